"""A bounded, expiring cache for a warm function's lookups and secrets (every cloud's
enrichment and secret ports use it)."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

__all__ = ["CachedLookup", "TtlCache"]


class TtlCache:
    """A dict with a size bound and an age bound; the oldest entries go first."""

    def __init__(self, max_entries: int = 10_000, ttl_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self.clock = clock
        self._data: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any, default: Any = None) -> Any:
        hit = self._data.get(key)
        if hit is None:
            return default
        if hit[0] < self.clock():
            del self._data[key]
            return default
        return hit[1]

    def put(self, key: Any, value: Any) -> None:
        self._data.pop(key, None)
        while len(self._data) >= self.max_entries:
            del self._data[next(iter(self._data))]
        self._data[key] = (self.clock() + self.ttl_s, value)

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        self._data.clear()


_MISSING = object()


class CachedLookup:
    """``ctx.lookup(table, keys) -> {key: row}`` on a cloud key-value store, batched and
    cached per warm instance (misses too). Each cloud adapter subclasses it with
    :meth:`wire` (a record's value -> the store's key text) and :meth:`fetch` (one batch of
    keys -> the rows found); ``batch_keys`` is the store's most keys per call."""

    batch_keys = 100

    def __init__(self, tables: Mapping[str, str], *, cache: TtlCache | None = None) -> None:
        self.tables = dict(tables)
        self.cache = cache if cache is not None else TtlCache()
        self.calls = 0

    def __call__(self, table: str, keys: Sequence[Hashable]) -> dict[Hashable, dict[str, Any]]:
        physical = self.tables.get(table)
        if physical is None or not self.configured(table):
            known = ", ".join(sorted(self.tables)) or "none"
            raise LookupError(f"lookup table {table!r} is not configured for this function "
                              f"(configured: {known}); is it named in the pipeline spec?")
        found: dict[Hashable, dict[str, Any]] = {}
        wanted: dict[str, list[Hashable]] = {}  # wire key -> the record values asking for it
        for k in keys:
            row = self.cache.get((table, k), _MISSING)
            if row is _MISSING:
                wanted.setdefault(self.wire(table, k), []).append(k)
            elif row is not None:
                found[k] = row
        if not wanted:
            return found
        fetched: dict[str, dict[str, Any]] = {}
        wire = list(wanted)
        for start in range(0, len(wire), self.batch_keys):
            self.fetch(table, physical, wire[start:start + self.batch_keys], fetched)
        for w, asking in wanted.items():
            row = fetched.get(w)
            for k in asking:
                self.cache.put((table, k), row)  # misses are cached too
                if row is not None:
                    found[k] = row
        return found

    def configured(self, table: str) -> bool:
        return True

    def wire(self, table: str, value: Hashable) -> str:
        return value if isinstance(value, str) else str(value)

    def fetch(self, table: str, physical: str, keys: list[str],
              out: dict[str, dict[str, Any]]) -> None:
        """Put the rows of ``keys`` that exist into ``out`` (wire key -> row); raise
        ``Retryable`` when the store fails as a whole."""
        raise NotImplementedError
