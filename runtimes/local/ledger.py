"""The ledger of processed objects, a table inside the warehouse DuckDB file.

One row per (pipeline, object key, sha256 of the content). It is written in the same
transaction as the object's rows, so a committed ledger row always means "these rows are
in the warehouse" and a crash leaves neither. An object whose (pipeline, key, sha256) is
in the ledger is skipped on the next run; an object whose content changed has a new
sha256 and is processed again, replacing the rows of its earlier version.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LEDGER_TABLE", "Ledger"]

LEDGER_TABLE = "_headwater_ledger"


class Ledger:
    def __init__(self, con: Any) -> None:
        self.con = con

    def ensure(self) -> None:
        self.con.execute(
            f"CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} ("
            " pipeline VARCHAR NOT NULL, object_key VARCHAR NOT NULL, sha256 VARCHAR NOT NULL,"
            " bytes BIGINT, received BIGINT, written BIGINT, dropped BIGINT,"
            " dead_lettered BIGINT, processed_at TIMESTAMP DEFAULT current_timestamp,"
            " PRIMARY KEY (pipeline, object_key, sha256))"
        )

    def is_done(self, pipeline: str, key: str, sha256: str) -> bool:
        row = self.con.execute(
            f"SELECT 1 FROM {LEDGER_TABLE} WHERE pipeline = ? AND object_key = ? AND sha256 = ?",
            [pipeline, key, sha256]).fetchone()
        return row is not None

    def seen(self, pipeline: str, key: str) -> bool:
        """Whether any version of ``key`` was processed by ``pipeline`` before."""
        row = self.con.execute(
            f"SELECT 1 FROM {LEDGER_TABLE} WHERE pipeline = ? AND object_key = ? LIMIT 1",
            [pipeline, key]).fetchone()
        return row is not None

    def record(self, pipeline: str, key: str, sha256: str, size: int, counters: Any) -> None:
        """Mark ``key`` done (inside the caller's transaction), replacing older versions."""
        self.con.execute(f"DELETE FROM {LEDGER_TABLE} WHERE pipeline = ? AND object_key = ?",
                         [pipeline, key])
        self.con.execute(
            f"INSERT INTO {LEDGER_TABLE} (pipeline, object_key, sha256, bytes, received, "
            "written, dropped, dead_lettered) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [pipeline, key, sha256, size, counters.received, counters.written,
             counters.dropped, counters.dead_lettered])

    def entries(self, pipeline: str | None = None) -> list[tuple[str, str, str]]:
        sql = f"SELECT pipeline, object_key, sha256 FROM {LEDGER_TABLE}"
        params: list[Any] = []
        if pipeline is not None:
            sql += " WHERE pipeline = ?"
            params.append(pipeline)
        return [tuple(r) for r in self.con.execute(sql + " ORDER BY 1, 2", params).fetchall()]
