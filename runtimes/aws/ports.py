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
from collections.abc import Callable, Hashable, Mapping
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from transforms.contract import Retryable

from ..core.cache import CachedLookup, TtlCache
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


class DynamoLookup(CachedLookup):
    """``lookup(table, keys) -> {key: row}`` on DynamoDB ``BatchGetItem``.

    ``tables`` maps the logical table a transform names to the DynamoDB table;
    ``keys`` maps it to the key attribute, either a name or ``{"name": ..., "type": "S"|"N"}``
    (default type ``S``, so a record's ``7`` finds the item keyed ``"7"``).
    """

    batch_keys = BATCH_KEYS

    def __init__(self, client: Any, tables: Mapping[str, str], keys: Mapping[str, Any], *,
                 cache: TtlCache | None = None, max_attempts: int = 8, base_s: float = 0.05,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(tables, cache=cache)
        self.client = client
        self.keys: dict[str, tuple[str, str]] = {}
        for name, spec in keys.items():
            if isinstance(spec, Mapping):
                self.keys[name] = (str(spec["name"]), str(spec.get("type", "S")))
            else:
                self.keys[name] = (str(spec), "S")
        self.max_attempts = max_attempts
        self.base_s = base_s
        self.sleep = sleep

    def configured(self, table: str) -> bool:
        return table in self.keys

    def wire(self, table: str, value: Hashable) -> str:
        return self._wire(value, self.keys[table][1])

    def fetch(self, table: str, physical: str, keys: list[str],
              out: dict[str, dict[str, Any]]) -> None:
        attr, kind = self.keys[table]
        self._fetch(physical, attr, kind, keys, out)

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
