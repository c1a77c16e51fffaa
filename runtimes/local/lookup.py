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

from collections.abc import Mapping
from pathlib import Path

# the same HEADWATER_SECRET_<NAME> settings the Azure runtime reads (Key Vault references)
from ..core.envsecrets import SecretMissing, env_secret, secret_env_name
from ..core.tables import LookupUnavailable, TableLookup

__all__ = ["FolderLookup", "LookupUnavailable", "SecretMissing", "env_secret", "secret_env_name"]


class FolderLookup(TableLookup):
    """``lookup(table, keys) -> {key: row}`` over ``<folder>/<table>.csv|.ndjson``."""

    def __init__(self, folder: str | Path, keys: Mapping[str, str] | None = None) -> None:
        self.folder = Path(folder)
        super().__init__(self._file, keys)

    def _file(self, table: str) -> tuple[str, bytes, str]:
        csv_path = self.folder / f"{table}.csv"
        nd_path = self.folder / f"{table}.ndjson"
        if csv_path.is_file():
            return "csv", csv_path.read_bytes(), str(csv_path)
        if nd_path.is_file():
            return "ndjson", nd_path.read_bytes(), str(nd_path)
        raise LookupUnavailable(
            f"lookup table {table!r} not found: looked for {csv_path} and {nd_path}")
