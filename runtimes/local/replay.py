"""``headwater replay`` and ``headwater forget`` on the local stack: the dead-letter folder
``<root>/deadletter/`` and the DuckDB warehouse.

Replay: each dead-letter file's records are written in one DuckDB transaction that also
records the file in ``_headwater_replayed``; the file is then moved under
``<pipeline>/_replayed/``. A crash between the commit and the move leaves a file that is
recorded: the next replay only moves it, never writes its records twice.

Forget: deletes the rows whose ``field`` equals ``value`` from the pipeline's table, and
rewrites every dead-letter file (replayed ones too) and raw source object under the
pipeline's prefix (NDJSON, JSON lines) without the records holding that value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from transforms.contract import Context

from ..core.bootstrap import PipelineSettings, engine_from_manifest
from ..core.replay import ReplayReport, replay
from .deadletter import FolderDeadLetter
from .duckdb_sink import DuckDBSink, quote
from .lookup import FolderLookup, env_secret
from .store import FolderStore

__all__ = ["ForgetReport", "forget_local", "replay_local"]

PREFIX = "deadletter/"
REPLAYED_TABLE = "_headwater_replayed"


def replay_local(manifest: Mapping[str, Any], root: str | Path, warehouse: str | Path, *,
                 since: str | None = None, dry_run: bool = False,
                 environ: Mapping[str, str] | None = None) -> ReplayReport:
    import duckdb

    root = Path(root)
    spec = PipelineSettings.from_manifest(manifest)
    if manifest.get("error"):
        raise RuntimeError(f"pipeline {spec.name!r} cannot be built: {manifest['error']}")
    store = FolderStore(root)
    con = duckdb.connect(str(warehouse), read_only=dry_run) if Path(warehouse).exists() or \
        not dry_run else None
    try:
        table = None
        if con is not None and not dry_run:
            con.execute(f"CREATE TABLE IF NOT EXISTS {REPLAYED_TABLE} (pipeline VARCHAR, "
                        "file VARCHAR, replayed_at TIMESTAMP DEFAULT current_timestamp)")
            table = DuckDBSink(con, spec.table, spec.columns, pipeline=spec.name,
                               max_batch=spec.sink_batch)
            table.prepare()
        keys = {t: key for t, key in spec.lookup_keys.items() if key}
        ctx = Context(pipeline=spec.name, lookup=FolderLookup(root / "lookup", keys),
                      secret=env_secret(environ))
        engine = engine_from_manifest(manifest, sink=table or _NoSink(),  # type: ignore[arg-type]
                                      deadletter=FolderDeadLetter(root / "deadletter"),
                                      ctx=ctx)

        def done(name: str) -> bool:
            return con is not None and con.execute(
                f"SELECT 1 FROM {REPLAYED_TABLE} WHERE pipeline = ? AND file = ?",
                [spec.name, name]).fetchone() is not None

        def commit(name: str) -> None:
            con.execute(f"INSERT INTO {REPLAYED_TABLE} (pipeline, file) VALUES (?, ?)",
                        [spec.name, name])
            con.execute("COMMIT")
            con.execute("BEGIN TRANSACTION")

        def on_source(bucket: str, key: str) -> None:
            if table is not None:
                table.object_key = key

        if con is not None and not dry_run:
            con.execute("BEGIN TRANSACTION")
        try:
            report = replay(store, PREFIX, engine, since=since, dry_run=dry_run,
                            commit=commit, done=done, on_source=on_source)
        except BaseException:
            if con is not None and not dry_run:
                con.execute("ROLLBACK")
            raise
        if con is not None and not dry_run:
            con.execute("COMMIT")
        return report
    finally:
        if con is not None:
            con.close()


class _NoSink:
    max_batch = 500

    def write(self, records: list[dict[str, Any]]) -> list:
        raise RuntimeError("dry run: nothing is written")


@dataclass
class ForgetReport:
    rows: int = 0
    files: list[str] = field(default_factory=list)  # dead-letter and raw files rewritten
    entries: int = 0  # dead-letter entries and raw records removed


def _holds(doc: Any, field_name: str, value: str) -> bool:
    if not isinstance(doc, dict):
        return False
    if field_name in doc and str(doc[field_name]) == value:
        return True
    return any(_holds(doc.get(k), field_name, value) for k in ("record",))


def _raw_holds(raw: bytes, field_name: str, value: str) -> bool:
    try:
        return _holds(orjson.loads(raw), field_name, value)
    except orjson.JSONDecodeError:
        # damaged input: forget it when the pair appears in its text at all
        return field_name.encode() in raw and value.encode() in raw


def forget_local(manifest: Mapping[str, Any], root: str | Path, warehouse: str | Path,
                 field_name: str, value: str) -> ForgetReport:
    import duckdb

    root = Path(root)
    spec = PipelineSettings.from_manifest(manifest)
    report = ForgetReport()
    if Path(warehouse).exists():
        with duckdb.connect(str(warehouse)) as con:
            exists = con.execute("SELECT count(*) FROM information_schema.columns WHERE "
                                 "table_name = ? AND column_name = ?",
                                 [spec.table, field_name]).fetchone()[0]
            if exists:
                (report.rows,) = con.execute(
                    f"SELECT count(*) FROM {quote(spec.table)} WHERE "
                    f"CAST({quote(field_name)} AS VARCHAR) = ?", [value]).fetchone()
                con.execute(f"DELETE FROM {quote(spec.table)} WHERE "
                            f"CAST({quote(field_name)} AS VARCHAR) = ?", [value])
    store = FolderStore(root)
    for name in list(store.list(f"{PREFIX}{spec.name}/")):
        _rewrite(store, name, report, lambda e: _holds(e, field_name, value) or (
            bool(e.get("raw")) and _raw_holds(str(e["raw"]).encode(), field_name, value)))
    for name in list(store.list(spec.prefix)):
        if name.endswith((".ndjson", ".jsonl")):
            _rewrite_raw(store, name, report, field_name, value)
    return report


def _rewrite(store: FolderStore, name: str, report: ForgetReport, holds) -> None:
    lines = store.read(name).splitlines()
    keep = [x for x in lines if x.strip() and not holds(orjson.loads(x))]
    if len(keep) == len([x for x in lines if x.strip()]):
        return
    report.entries += len([x for x in lines if x.strip()]) - len(keep)
    report.files.append(name)
    if keep:
        store.write(name, b"".join(x + b"\n" for x in keep))
    else:
        store.delete(name)


def _rewrite_raw(store: FolderStore, name: str, report: ForgetReport, field_name: str,
                 value: str) -> None:
    lines = store.read(name).splitlines()
    keep = [x for x in lines if not (x.strip() and _raw_holds(x, field_name, value))]
    if len(keep) == len(lines):
        return
    report.entries += len(lines) - len(keep)
    report.files.append(name)
    store.write(name, b"".join(x + b"\n" for x in keep))
