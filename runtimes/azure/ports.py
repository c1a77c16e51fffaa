"""The ``ctx.lookup`` and ``ctx.secret`` ports on Table Storage and app settings.

Lookup rows live in the pipeline's Table Storage table with ``PartitionKey`` = the logical
table name (``users``) and ``RowKey`` = the key value (the record's ``user_id``). A batch
of keys costs one query per 14 keys (the Table service allows 15 comparisons per filter;
one is the partition), and rows (and misses) are cached per worker for a bounded time.

Store errors become :class:`~transforms.contract.Retryable` (the invocation fails and the
function's retry policy runs it again) rather than per-record failures: a throttled table
or a missing role must not dead-letter every record of a blob.

Secrets are app settings ``HEADWATER_SECRET_<NAME>`` holding Key Vault references, which
the platform resolves with the app's identity (:mod:`runtimes.core.envsecrets`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from transforms.contract import Retryable

from ..core.cache import CachedLookup, TtlCache
from ..core.envsecrets import env_secret

__all__ = ["BATCH_KEYS", "TableLookup", "app_setting_secret", "plain"]

BATCH_KEYS = 14
_SYSTEM = frozenset({"PartitionKey", "RowKey", "Timestamp", "etag", "odata.etag"})


def plain(entity: Mapping[str, Any]) -> dict[str, Any]:
    """A Table entity as a plain, JSON-able dict (system properties dropped, typed
    values such as Int64 unwrapped)."""
    return {k: getattr(v, "value", v) for k, v in entity.items() if k not in _SYSTEM}


def app_setting_secret():
    return env_secret(hint="the app setting {var} (a Key Vault reference) is missing or "
                           "did not resolve; check the app's access to the secret")


class TableLookup(CachedLookup):
    """``lookup(table, keys) -> {key: row}`` on Table Storage queries.

    ``tables`` maps the logical table a transform names to the Table Storage table.
    """

    batch_keys = BATCH_KEYS

    def __init__(self, service: Any, tables: Mapping[str, str], *,
                 cache: TtlCache | None = None) -> None:
        super().__init__(tables, cache=cache)
        self.service = service

    def fetch(self, table: str, physical: str, keys: list[str],
              out: dict[str, dict[str, Any]]) -> None:
        self._query(self.service.get_table_client(physical), table, physical, keys, out)

    def _query(self, client: Any, table: str, physical: str, wire: list[str],
               out: dict[str, dict[str, Any]]) -> None:
        from azure.core.exceptions import AzureError

        params: dict[str, Any] = {"pk": table}
        ors = []
        for i, w in enumerate(wire):
            params[f"k{i}"] = w
            ors.append(f"RowKey eq @k{i}")
        # a parameter must be followed by a space: "@k0)" does not parse client-side
        query = f"PartitionKey eq @pk and ({' or '.join(ors)} )"
        self.calls += 1
        try:
            for entity in client.query_entities(query, parameters=params):
                out[entity["RowKey"]] = plain(entity)
        except AzureError as exc:
            raise Retryable(f"lookup in Table Storage table {physical!r} (for {table!r}) "
                            f"failed: {type(exc).__name__}: {exc}") from exc
