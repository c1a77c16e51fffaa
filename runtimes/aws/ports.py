"""The ``ctx.lookup`` and ``ctx.secret`` ports on DynamoDB and Secrets Manager.

Both cache per container: a warm Lambda reuses rows and secrets across invocations
for a bounded time, so a batch of a thousand orders from forty users costs one
``BatchGetItem`` the first time and none for the next few minutes.

Store errors become :class:`~transforms.contract.Retryable` (the invocation fails and SQS
redelivers) rather than per-record failures: a throttled table or a missing permission
must not dead-letter every record of an object. A key of the wrong type for the table is
the exception: DynamoDB answers ``ValidationException``, which fails the batch's records
with the cause, as any record error does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from transforms.contract import Retryable

from ..core.cache import TtlCache
from ..core.secrets import CachedSecrets
from .clients import error_code, error_message

__all__ = ["DynamoLookup", "SecretStore", "TtlCache", "from_dynamo"]  # TtlCache: re-export

BATCH_KEYS = 100  # BatchGetItem accepts at most 100 keys per call


def from_dynamo(item: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB item (attribute-value form) as a plain, JSON-able dict."""
    return {name: _value(av) for name, av in item.items()}


def _value(av: Mapping[str, Any]) -> Any:
    (kind, v), = av.items()
    if kind == "S":
        return v
    if kind == "N":
        d = Decimal(v)
        return int(d) if d == d.to_integral_value() else float(d)
    if kind == "BOOL":
        return bool(v)
    if kind == "NULL":
        return None
    if kind == "M":
        return from_dynamo(v)
    if kind == "L":
        return [_value(x) for x in v]
    if kind in ("SS", "BS"):
        return sorted(v)
    if kind == "NS":
        return sorted(_value({"N": x}) for x in v)
    return v  # "B": bytes, which the sink serializes as text


_MISSING = object()


class DynamoLookup:
    """``lookup(table, keys) -> {key: row}`` on DynamoDB ``BatchGetItem``.

    ``tables`` maps the logical table a transform names to the DynamoDB table;
    ``keys`` maps it to the key attribute, either a name or ``{"name": ..., "type": "S"|"N"}``
    (default type ``S``, so a record's ``7`` finds the item keyed ``"7"``).
    """

    def __init__(self, client: Any, tables: Mapping[str, str], keys: Mapping[str, Any], *,
                 cache: TtlCache | None = None, max_attempts: int = 8, base_s: float = 0.05,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.tables = dict(tables)
        self.keys: dict[str, tuple[str, str]] = {}
        for name, spec in keys.items():
            if isinstance(spec, Mapping):
                self.keys[name] = (str(spec["name"]), str(spec.get("type", "S")))
            else:
                self.keys[name] = (str(spec), "S")
        self.cache = cache if cache is not None else TtlCache()
        self.max_attempts = max_attempts
        self.base_s = base_s
        self.sleep = sleep
        self.calls = 0

    def __call__(self, table: str, keys: Sequence[Hashable]) -> dict[Hashable, dict[str, Any]]:
        physical = self.tables.get(table)
        if physical is None or table not in self.keys:
            known = ", ".join(sorted(self.tables)) or "none"
            raise LookupError(f"lookup table {table!r} is not configured for this function "
                              f"(configured: {known}); is it named in the pipeline spec?")
        attr, kind = self.keys[table]
        found: dict[Hashable, dict[str, Any]] = {}
        wanted: dict[str, list[Hashable]] = {}  # wire value -> the record values asking for it
        for k in keys:
            row = self.cache.get((table, k), _MISSING)
            if row is _MISSING:
                wanted.setdefault(self._wire(k, kind), []).append(k)
            elif row is not None:
                found[k] = row
        if not wanted:
            return found
        fetched: dict[str, dict[str, Any]] = {}
        wire = list(wanted)
        for start in range(0, len(wire), BATCH_KEYS):
            self._fetch(physical, attr, kind, wire[start:start + BATCH_KEYS], fetched)
        for w, asking in wanted.items():
            row = fetched.get(w)
            for k in asking:
                self.cache.put((table, k), row)  # misses are cached too
                if row is not None:
                    found[k] = row
        return found

    @staticmethod
    def _wire(value: Hashable, kind: str) -> str:
        if kind == "N":
            try:
                return str(Decimal(str(value)).normalize())
            except ArithmeticError:
                raise ValueError(f"lookup key {value!r} is not a number") from None
        return value if isinstance(value, str) else str(value)

    def _fetch(self, table: str, attr: str, kind: str, wire: list[str],
               out: dict[str, dict[str, Any]]) -> None:
        request: dict[str, Any] = {table: {"Keys": [{attr: {kind: w}} for w in wire]}}
        for attempt in range(self.max_attempts):
            self.calls += 1
            try:
                resp = self.client.batch_get_item(RequestItems=request)
            except ClientError as exc:
                code = error_code(exc)
                if code == "ValidationException":
                    raise ValueError(f"lookup in DynamoDB table {table!r} on {attr!r}: "
                                     f"{error_message(exc)}") from exc
                raise Retryable(f"lookup in DynamoDB table {table!r} failed: {code}: "
                                f"{error_message(exc)}") from exc
            except BotoCoreError as exc:
                raise Retryable(f"lookup in DynamoDB table {table!r} failed: {exc}") from exc
            for item in resp.get("Responses", {}).get(table, []):
                row = from_dynamo(item)
                key = item.get(attr, {}).get(kind)
                if kind == "N" and key is not None:
                    key = str(Decimal(key).normalize())
                if key is not None:
                    out[key] = row
            request = resp.get("UnprocessedKeys") or {}
            if not request:
                return
            self.sleep(min(2.0, self.base_s * 2 ** attempt))
        left = len(request.get(table, {}).get("Keys", []))
        raise Retryable(f"lookup in DynamoDB table {table!r}: {left} keys still unprocessed "
                        f"after {self.max_attempts} BatchGetItem calls (throttled)")


class SecretStore(CachedSecrets):
    """``secret(name) -> str`` on Secrets Manager; ``ids`` maps logical names to ARNs."""

    def __init__(self, client: Any, ids: Mapping[str, str], *, ttl_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(ids, ttl_s=ttl_s, clock=clock)
        self.client = client

    def fetch(self, name: str, ref: str) -> str:
        try:
            resp = self.client.get_secret_value(SecretId=ref)
        except (ClientError, BotoCoreError) as exc:
            raise Retryable(f"reading secret {name!r} ({ref}) failed: {exc}") from exc
        value = resp.get("SecretString")
        if value is None:
            raise ValueError(f"secret {name!r} ({ref}) holds binary data, not text")
        return value
