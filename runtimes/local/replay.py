"""``headwater replay`` and ``headwater forget`` on the local stack: the dead-letter folder
``<root>/deadletter/`` and the DuckDB warehouse.

Replay: each dead-letter file's records are written in one DuckDB transaction that also
records the file in ``_headwater_replayed``; the file is then moved under
``<pipeline>/_replayed/``. A crash between the commit and the move leaves a file that is
recorded: the next replay only moves it, never writes its records twice.

Forget: deletes the rows whose ``field`` equals ``value`` from the pipeline's table, and
rewrites every dead-letter file (replayed ones too) and every raw source object the
pipeline reads (NDJSON, JSON, CSV, Parquet; gzip ones stay gzip) without the records
holding that value. An object that cannot be read is left as it is and reported, never
skipped in silence.
"""

from __future__ import annotations

import base64
import csv
import gzip
import io
import json
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from transforms.contract import Context

from ..core.bootstrap import PipelineSettings, engine_from_manifest
from ..core.formats import (
    BOM,
    CSVLines,
    DecodeError,
    format_of,
    is_gzip,
    open_stream,
    unique_header,
)
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
            if table is not None:
                table.flush()  # the sink keeps checked batches back for one INSERT
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
                if table is not None:
                    table.forget()
            raise
        if con is not None and not dry_run:
            if table is not None:
                table.flush()
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
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (raw object, why)


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
    store = FolderStore(root)
    raw = [name for name in store.list(spec.prefix) if spec.wants(name)]
    _need_pyarrow(raw, spec.format)  # before anything changes
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
    for name in list(store.list(f"{PREFIX}{spec.name}/")):
        _rewrite(store, name, report, lambda line: _entry_holds(line, field_name, value))
    for name in raw:
        _rewrite_raw(store, name, report, spec, field_name, value)
    return report


def _need_pyarrow(names: list[str], fmt: str) -> None:
    for name in names:
        try:
            parquet = format_of(name, fmt) == "parquet"
        except DecodeError:
            continue  # reported as unreadable when its turn comes
        if parquet:
            try:
                import pyarrow.parquet  # noqa: F401
            except ImportError:
                raise RuntimeError(f"{name} is a Parquet object and forget needs pyarrow to "
                                   "rewrite it: install headwater[parquet] (nothing was "
                                   "changed)") from None
            return


def _entry_holds(line: bytes, field_name: str, value: str) -> bool:
    """Does a dead-letter entry hold the value: in its record, or in the input text it
    keeps (``raw``, or ``raw_b64`` for bytes that were not UTF-8)?"""
    try:
        entry = orjson.loads(line)
    except orjson.JSONDecodeError:  # a damaged entry: the pair anywhere in its text
        return _raw_holds(line, field_name, value)
    if not isinstance(entry, dict):
        return False
    if _holds(entry, field_name, value):
        return True
    raw = entry.get("raw")
    if raw:
        return _raw_holds(str(raw).encode(), field_name, value)
    if entry.get("raw_b64"):
        try:
            data = base64.b64decode(str(entry["raw_b64"]))
        except ValueError:
            return False
        return _raw_holds(data, field_name, value)
    return False


def _rewrite(store: FolderStore, name: str, report: ForgetReport, holds) -> None:
    lines = store.read(name).splitlines()
    keep = [x for x in lines if x.strip() and not holds(x)]
    if len(keep) == len([x for x in lines if x.strip()]):
        return
    report.entries += len([x for x in lines if x.strip()]) - len(keep)
    report.files.append(name)
    if keep:
        store.write(name, b"".join(x + b"\n" for x in keep))
    else:
        store.delete(name)


# A raw object's content (gunzipped) without the records holding the value, and how many
# records went; None when none did.
_Without = Callable[[bytes, str, str, PipelineSettings], tuple[bytes, int] | None]


def _rewrite_raw(store: FolderStore, name: str, report: ForgetReport, spec: PipelineSettings,
                 field_name: str, value: str) -> None:
    data = store.read(name)
    if not data:
        return
    try:
        without = _WITHOUT[format_of(name, spec.format)]
        gz = is_gzip(name, data, spec.compression)
        plain = open_stream(io.BytesIO(data), name, spec.compression).read() if gz else data
        done = without(plain, field_name, value, spec)
    except (ValueError, EOFError, zlib.error, csv.Error) as exc:  # damage: the object is kept
        report.unreadable.append((name, f"{type(exc).__name__}: {exc}"))
        return
    if done is None:
        return
    out, removed = done
    report.entries += removed
    report.files.append(name)
    store.write(name, gzip.compress(out) if gz else out)


def _ndjson_without(data: bytes, field_name: str, value: str,
                    spec: PipelineSettings) -> tuple[bytes, int] | None:
    lines = data.split(b"\n")  # as the decoder splits; the kept lines stay byte for byte
    keep = [x for x in lines if not (x.strip() and _raw_holds(x, field_name, value))]
    return (b"\n".join(keep), len(lines) - len(keep)) if len(keep) < len(lines) else None


def _json_without(data: bytes, field_name: str, value: str,
                  spec: PipelineSettings) -> tuple[bytes, int] | None:
    doc = json.loads(data.decode("utf-8-sig"))  # json, not orjson: integers stay exact
    if not isinstance(doc, list):  # one document: one record
        return (b"", 1) if _holds(doc, field_name, value) else None
    keep = [x for x in doc if not _holds(x, field_name, value)]
    if len(keep) == len(doc):
        return None
    return json.dumps(keep, ensure_ascii=False).encode(), len(doc) - len(keep)


def _csv_without(data: bytes, field_name: str, value: str,
                 spec: PipelineSettings) -> tuple[bytes, int] | None:
    lines = CSVLines(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig",  # type: ignore[arg-type]
                                      errors="surrogateescape", newline=""))
    reader = csv.reader(lines, delimiter=spec.csv_delimiter, strict=True)
    header = unique_header(next(reader, []))
    if field_name not in header:
        return None
    col = header.index(field_name)
    keep = lines.taken[:]  # each row is written back as its own input text, quoting and all
    removed = 0
    for row in reader:
        if len(row) > col and row[col] == value:
            removed += 1
        else:
            keep.extend(lines.taken)
        lines.taken.clear()
    if not removed:
        return None
    bom = BOM if data.startswith(BOM) else b""
    return bom + "".join(keep).encode("utf-8", "surrogateescape"), removed


_CODECS = {"UNCOMPRESSED": "none", "LZ4_RAW": "lz4"}  # Parquet metadata -> pyarrow's names


def _parquet_without(data: bytes, field_name: str, value: str,
                     spec: PipelineSettings) -> tuple[bytes, int] | None:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(io.BytesIO(data))
        if field_name not in pf.schema_arrow.names:
            return None
        table = pf.read()
    except pa.ArrowException as exc:
        raise DecodeError(f"not a readable Parquet file: {exc}") from exc
    try:
        text = pc.cast(table[field_name], pa.string())
    except pa.ArrowException as exc:
        raise DecodeError(f"column {field_name!r} cannot be compared as text: {exc}") from exc
    kept = table.filter(pc.invert(pc.fill_null(pc.equal(text, value), False)))
    if kept.num_rows == table.num_rows:
        return None
    codec = pf.metadata.row_group(0).column(0).compression
    out = io.BytesIO()
    pq.write_table(kept, out, compression=_CODECS.get(codec, codec.lower()))
    return out.getvalue(), table.num_rows - kept.num_rows


_WITHOUT: dict[str, _Without] = {"ndjson": _ndjson_without, "json": _json_without,
                                "csv": _csv_without, "parquet": _parquet_without}
