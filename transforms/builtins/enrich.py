"""Copy columns from a lookup table into each record, one batched lookup per batch.

Usage in a pipeline spec::

    - use: enrich
      with: {table: users, key: user_id, fields: [tier, country], prefix: "user_"}

    {"order": 1, "user_id": 7}  ->  {"order": 1, "user_id": 7, "user_tier": "gold", "user_country": "FR"}

The table is read through ``ctx.lookup(table, keys)`` (DynamoDB, Firestore, Table Storage
or DuckDB, depending on where the pipeline runs). The engine calls ``f.batch`` once per
batch, which makes a single lookup for the distinct keys of the whole batch; ``f`` itself
(one lookup per record) is the fallback.

Keys are looked up as they appear in the record; a row stored under the text form of the
key also matches (record ``7``, table ``"7"``). Errors of the lookup itself (including
:class:`~transforms.contract.Retryable`) propagate: the engine decides, not this transform.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..contract import Context
from . import _settings as s

__all__ = ["make"]

_MISSING = object()


def make(*, table: str, key: str, fields: list[str] | None = None, prefix: str = "",
         on_missing: str = "keep"):
    """Add columns of the ``table`` row whose key is the record's ``key`` field.

    Settings:

    - ``table``: the lookup table name.
    - ``key``: the record field holding the lookup key.
    - ``fields`` (default: all): the columns to copy; an empty list or no setting copies
      every column except the one named ``key``. A listed column absent from the row is
      not added.
    - ``prefix`` (default ``""``): put before each copied column name.
    - ``on_missing``: when no row is found, or the record has no (or a null) key:
      ``keep`` (default: pass the record unchanged), ``drop`` (filter it out) or
      ``dead-letter`` (fail it with ``LookupError``).

    Example::

        - use: enrich
          with: {table: products, key: sku, fields: [name], on_missing: dead-letter}

        {"sku": "A1", "qty": 2}  ->  {"sku": "A1", "qty": 2, "name": "Lamp"}
        {"sku": "ZZ", "qty": 1}  ->  LookupError: no row in lookup table 'products' for sku='ZZ'
    """
    table = s.name("table", table)
    key = s.name("key", key)
    columns = tuple(s.names("fields", fields, allow_empty=True)) if fields is not None else ()
    prefix = s.text("prefix", prefix)
    on_missing = s.choice("on_missing", on_missing, ("keep", "drop", "dead-letter"))
    copy_all = not columns
    renamed = tuple((c, prefix + c) for c in columns)

    def apply(record: dict[str, Any], row: Mapping[str, Any]) -> dict[str, Any]:
        if copy_all:
            for col, value in row.items():
                if col != key:
                    record[prefix + col] = value
        else:
            for col, dest in renamed:
                value = row.get(col, _MISSING)
                if value is not _MISSING:
                    record[dest] = value
        return record

    def missing(record: dict[str, Any], value: Any) -> dict[str, Any] | None | Exception:
        if on_missing == "keep":
            return record
        if on_missing == "drop":
            return None
        if value is None:
            return LookupError(f"no lookup key: field {key!r} is missing or null")
        return LookupError(f"no row in lookup table {table!r} for {key}={value!r}")

    def find(found: Mapping[Any, Any], value: Any, by_text: list[dict[str, Any]]) -> Any:
        row = found.get(value)
        if row is None and found:
            if not by_text:
                by_text.append({str(k): r for k, r in found.items()})
            row = by_text[0].get(str(value))
        return row

    def enrich(record: dict[str, Any], ctx: Context) -> dict[str, Any] | None:
        value = record.get(key)
        if value is None:
            row = None
        else:
            try:
                hash(value)
            except TypeError:
                raise TypeError(
                    f"field {key!r}: lookup key must be a scalar, got {s.short(value)}"
                ) from None
            row = find(ctx.lookup(table, [value]), value, [])
        if row is None:
            result = missing(record, value)
            if isinstance(result, Exception):
                raise result
            return result
        return apply(record, row)

    def batch(records: list[dict[str, Any]], ctx: Context) -> list[Any]:
        values: list[Any] = []
        wanted: dict[Any, None] = {}
        for record in records:
            value = record.get(key)
            if value is not None:
                try:
                    wanted[value] = None
                except TypeError:
                    value = _MISSING
            values.append(value)
        found: Mapping[Any, Any] = ctx.lookup(table, list(wanted)) if wanted else {}
        by_text: list[dict[str, Any]] = []
        out: list[Any] = []
        for record, value in zip(records, values, strict=True):
            if value is _MISSING:
                out.append(TypeError(
                    f"field {key!r}: lookup key must be a scalar, got {s.short(record.get(key))}"
                ))
                continue
            row = None if value is None else find(found, value, by_text)
            out.append(missing(record, value) if row is None else apply(record, row))
        return out

    enrich.batch = batch  # type: ignore[attr-defined]
    return enrich

