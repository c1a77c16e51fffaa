"""The local stack's status: the ledger (objects and records committed in the window) and
the dead-letter folder (entries written in the window, the newest one's error and key)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from runtimes.local.ledger import LEDGER_TABLE

from . import PipelineStatus, StatusError

__all__ = ["read_local"]


def read_local(pipelines: list[str], warehouse: Path, root: Path, since_s: int,
               now: float | None = None) -> list[PipelineStatus]:
    import duckdb

    now = time.time() if now is None else now
    if not warehouse.is_file():
        raise StatusError(f"no warehouse at {warehouse}: nothing has run yet "
                          "(`headwater run --stack local`), or pass --warehouse")
    try:
        con = duckdb.connect(str(warehouse), read_only=True)
    except duckdb.Error as exc:
        raise StatusError(f"cannot read {warehouse}: {exc}") from None
    try:
        has_ledger = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
            [LEDGER_TABLE]).fetchone()[0]
        out = []
        for name in pipelines:
            st = PipelineStatus(name, objects=0, records_in=0, written=0, dead_lettered=0,
                                errors=0)
            if has_ledger:
                # processed_at is the warehouse's current_timestamp (UTC in DuckDB's session)
                row = con.execute(
                    f"SELECT count(*), coalesce(sum(received), 0), coalesce(sum(written), 0), "
                    "coalesce(sum(dead_lettered), 0) "
                    f"FROM {LEDGER_TABLE} WHERE pipeline = ? AND processed_at >= "
                    "to_timestamp(?)::TIMESTAMP", [name, now - since_s]).fetchone()
                st.objects, st.records_in, st.written, st.dead_lettered = (float(x)
                                                                            for x in row)
            _deadletters(st, root / "deadletter" / name, now - since_s)
            out.append(st)
        return out
    finally:
        con.close()


def _deadletters(st: PipelineStatus, folder: Path, after: float) -> None:
    """The newest dead-letter entry written after ``after``: its error and source key.
    (The count comes from the ledger: entries of rolled-back attempts are in the folder
    too, and would count twice.)"""
    files = sorted((p for p in folder.glob("dt=*/*.ndjson") if p.stat().st_mtime >= after),
                   key=lambda p: (p.stat().st_mtime, p.name))
    last: dict = {}
    if files:
        lines = [x for x in files[-1].read_text(encoding="utf-8").splitlines() if x.strip()]
        try:
            last = json.loads(lines[-1]) if lines else {}
        except ValueError:
            last = {"message": f"unreadable dead-letter entry in {files[-1]}"}
    if last:
        st.last_error = f"{last.get('error_type', '')}: {last.get('message', '')}".strip(": ")
        st.last_error_key = str((last.get("source") or {}).get("key", ""))
