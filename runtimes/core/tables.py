"""Lookup tables given as files: ``<table>.csv`` (header row, values as text) or
``<table>.ndjson`` (one JSON object per line), the ``ctx.lookup`` port of the runtimes that
read their enrichment data from files (the local runner's folder, a Spark backfill's
tables read on the driver and shipped to the executors).

A table is parsed once, on its first lookup, into a dict keyed by the text of its key
column: the ``key`` setting of the step that names the table, or the table's first
column. Keys are matched as text, so a record holding ``7`` finds the row stored under
``"7"``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import orjson

from transforms.contract import Retryable

__all__ = ["FORMATS", "LookupUnavailable", "TableLookup", "check_table_name", "key_text",
           "parse_table"]

FORMATS = ("csv", "ndjson")


class LookupUnavailable(Retryable):
    """A lookup table is missing or unreadable: the object fails as a whole and stays
    undone, so a rerun after fixing it processes it (no record is dead-lettered for it)."""


def check_table_name(table: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", table) or table.startswith("."):
        raise LookupUnavailable(f"lookup table name {table!r} is not a plain file name")


def key_text(value: Any) -> str:
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is float and value.is_integer():
        return str(int(value))
    return str(value)


def _read_csv(data: bytes) -> list[dict[str, Any]]:
    text = data.decode("utf-8-sig")
    return [dict(r) for r in csv.DictReader(io.StringIO(text, newline=""))]


def _read_ndjson(data: bytes, where: str) -> list[dict[str, Any]]:
    out = []
    for n, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise LookupUnavailable(f"lookup table {where}, line {n}: {exc}") from None
        if not isinstance(rec, dict):
            raise LookupUnavailable(f"lookup table {where}, line {n}: not a JSON object")
        out.append(rec)
    return out


def parse_table(table: str, fmt: str, data: bytes, key: str | None,
                where: str = "") -> dict[str, dict[str, Any]]:
    """The rows of a ``csv`` or ``ndjson`` table file, keyed by the text of ``key`` (the
    first column when ``None``)."""
    where = where or table
    records = _read_csv(data) if fmt == "csv" else _read_ndjson(data, where)
    if key is None:
        key = next(iter(records[0]), None) if records else None
    rows: dict[str, dict[str, Any]] = {}
    for n, rec in enumerate(records, 1):
        if key not in rec:
            raise LookupUnavailable(f"lookup table {table!r}, row {n}: no key column {key!r}")
        value = rec[key]
        if value is not None:
            rows[key_text(value)] = rec
    return rows


class TableLookup:
    """``lookup(table, keys) -> {key: row}``; ``load(table)`` returns the table's
    ``(format, bytes, where)`` (and raises :class:`LookupUnavailable` when it has none)."""

    def __init__(self, load: Callable[[str], tuple[str, bytes, str]],
                 keys: Mapping[str, str] | None = None) -> None:
        self.load = load
        self.keys = dict(keys or {})
        self._tables: dict[str, dict[str, dict[str, Any]]] = {}

    def __call__(self, table: str, keys: Sequence[Hashable]) -> dict[Hashable, dict[str, Any]]:
        rows = self._tables.get(table)
        if rows is None:
            check_table_name(table)
            fmt, data, where = self.load(table)
            rows = self._tables[table] = parse_table(table, fmt, data, self.keys.get(table),
                                                     where)
        out: dict[Hashable, dict[str, Any]] = {}
        for k in keys:
            if k is None:
                continue
            row = rows.get(k if type(k) is str else key_text(k))
            if row is not None:
                out[k] = dict(row)
        return out
