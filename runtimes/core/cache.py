"""A bounded, expiring cache for a warm function's lookups and secrets (every cloud's
enrichment and secret ports use it)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["TtlCache"]


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
