"""The local ``ctx.lookup`` and ``ctx.secret`` ports.

Lookup tables are files in ``<root>/lookup/``: ``<table>.csv`` (header row, values as
text) or ``<table>.ndjson`` (one JSON object per line). A table is read once, on its first
lookup, into a dict keyed by the text of its key column: the ``key`` setting of the step
that names the table, or the table's first column. Keys are matched as text, so a record
holding ``7`` finds the row stored under ``"7"``.

Secrets come from the environment: ``ctx.secret("email-key")`` reads
``HEADWATER_SECRET_EMAIL_KEY`` (upper-cased, ``-`` and ``/`` become ``_``). The ``secrets:``
map of the spec names the cloud secret id and is not used locally.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from transforms.contract import Retryable

# the same HEADWATER_SECRET_<NAME> settings the Azure runtime reads (Key Vault references)
from ..core.envsecrets import SecretMissing, env_secret, secret_env_name

__all__ = ["FolderLookup", "LookupUnavailable", "SecretMissing", "env_secret", "secret_env_name"]


class LookupUnavailable(Retryable):
    """A lookup table file is missing or unreadable: the object fails as a whole and stays
    undone, so a rerun after fixing it processes it (no record is dead-lettered for it)."""


class FolderLookup:
    """``lookup(table, keys) -> {key: row}`` over ``<folder>/<table>.csv|.ndjson``."""

    def __init__(self, folder: str | Path, keys: Mapping[str, str] | None = None) -> None:
        self.folder = Path(folder)
        self.keys = dict(keys or {})
        self._tables: dict[str, dict[str, dict[str, Any]]] = {}

    def __call__(self, table: str, keys: Sequence[Hashable]) -> dict[Hashable, dict[str, Any]]:
        rows = self._tables.get(table)
        if rows is None:
            rows = self._tables[table] = self._load(table)
        out: dict[Hashable, dict[str, Any]] = {}
        for k in keys:
            if k is None:
                continue
            row = rows.get(k if type(k) is str else _key_text(k))
            if row is not None:
                out[k] = dict(row)
        return out

    def _load(self, table: str) -> dict[str, dict[str, Any]]:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", table) or table.startswith("."):
            raise LookupUnavailable(f"lookup table name {table!r} is not a plain file name")
        csv_path = self.folder / f"{table}.csv"
        nd_path = self.folder / f"{table}.ndjson"
        if csv_path.is_file():
            records = _read_csv(csv_path)
        elif nd_path.is_file():
            records = _read_ndjson(nd_path)
        else:
            raise LookupUnavailable(
                f"lookup table {table!r} not found: looked for {csv_path} and {nd_path}")
        key = self.keys.get(table)
        if key is None:
            key = next(iter(records[0]), None) if records else None
        rows: dict[str, dict[str, Any]] = {}
        for n, rec in enumerate(records, 1):
            if key not in rec:
                raise LookupUnavailable(f"lookup table {table!r}, row {n}: no key column {key!r}")
            value = rec[key]
            if value is not None:
                rows[_key_text(value)] = rec
        return rows


def _key_text(value: Any) -> str:
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is float and value.is_integer():
        return str(int(value))
    return str(value)


def _read_csv(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8-sig")
    return [dict(r) for r in csv.DictReader(io.StringIO(text, newline=""))]


def _read_ndjson(path: Path) -> list[dict[str, Any]]:
    out = []
    for n, line in enumerate(path.read_bytes().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise LookupUnavailable(f"lookup table {path}, line {n}: {exc}") from None
        if not isinstance(rec, dict):
            raise LookupUnavailable(f"lookup table {path}, line {n}: not a JSON object")
        out.append(rec)
    return out
