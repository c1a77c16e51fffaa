"""``headwater run --workers N``: objects decoded and transformed in worker processes.

A worker runs the pipeline's engine over one object into a *collecting* DuckDB sink (an
in-memory DuckDB with the sink table's declared columns): the type checks, the per-record
dead-letter entries and the counters are exactly those of a run in one process, and the
rows that fit come back cast to the table's types, as Arrow IPC bytes. The one writer (the
runner's process) then commits each object's rows, dead-letter files and ledger row in one
transaction, in the order of the objects, so the no-duplicates guarantee is unchanged.

Workers ignore SIGINT: Ctrl-C is the writer's to handle; it terminates the pool and rolls
back the object it was committing. Without declared columns a table's schema grows with
the batches in the order they come, which only the writer knows: such pipelines run in the
writer's process.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Mapping
from typing import Any

from transforms.contract import Context

from ..core.bootstrap import PipelineSettings, engine_from_manifest
from ..core.engine import Engine
from .duckdb_sink import DuckDBSink
from .hashing import HashingReader
from .lookup import FolderLookup, env_secret

__all__ = ["ObjectResult", "ignore_sigint", "process_object"]

_ENGINES: dict[str, tuple[Engine, DuckDBSink, Any]] = {}


def ignore_sigint() -> None:
    """Pool initializer: Ctrl-C in a terminal reaches the whole process group."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class _Collect:
    """The worker's dead-letter port: entries travel back to the writer."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, str, str, list[dict[str, Any]]]] = []

    def write(self, pipeline: str, bucket: str, key: str, entries: list[dict[str, Any]]) -> None:
        self.writes.append((pipeline, bucket, key, list(entries)))


def _engine(manifest: Mapping[str, Any], root: str, environ: Mapping[str, str] | None,
            columnar: bool) -> tuple[Engine, DuckDBSink, _Collect]:
    import duckdb

    spec = PipelineSettings.from_manifest(manifest)
    cached = _ENGINES.get(spec.name)
    if cached is None:
        table = DuckDBSink(duckdb.connect(), spec.table, spec.columns, pipeline=spec.name,
                           max_batch=spec.sink_batch, collect=True)
        table.prepare()
        keys = {t: key for t, key in spec.lookup_keys.items() if key}
        from pathlib import Path

        ctx = Context(pipeline=spec.name, lookup=FolderLookup(Path(root) / "lookup", keys),
                      secret=env_secret(environ))
        dl = _Collect()
        engine = engine_from_manifest(manifest, sink=table, ctx=ctx, sleep=time.sleep,
                                      deadletter=dl, columnar=columnar)
        cached = _ENGINES[spec.name] = (engine, table, dl)
    return cached


ObjectResult = tuple[bool, Any]


def process_object(manifest: Mapping[str, Any], root: str, environ: Mapping[str, str] | None,
                   key: str, path: str, sha256: str, columnar: bool = True) -> ObjectResult:
    """``(True, (counters, dead-letter writes, Arrow IPC bytes))`` or ``(False, "Type:
    message")`` when the object fails as a whole."""
    import pyarrow as pa

    try:
        engine, table, dl = _engine(manifest, root, environ, columnar)
        table.collected, dl.writes = [], []
        table.object_key = key
        with open(path, "rb") as f:
            reader = HashingReader(f)
            c = engine.process_object(reader, key, root, sha256)  # type: ignore[arg-type]
            digest = reader.drain()
        if digest != sha256:
            raise RuntimeError(f"object {key!r} changed while it was being read")
        table.flush()
        blobs = []
        for t in table.collected:
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, t.schema) as w:
                w.write_table(t)
            blobs.append(sink.getvalue().to_pybytes())
        return True, (c, dl.writes, blobs)
    except Exception as exc:  # the object fails as a whole; the writer reports it
        table_ = _ENGINES.get(str(manifest.get("pipeline", {}).get("name")))
        if table_ is not None:
            table_[1].forget()
        return False, f"{type(exc).__name__}: {exc}"


def tables(blobs: list[bytes]) -> list[Any]:
    import pyarrow as pa

    return [pa.ipc.open_stream(b).read_all() for b in blobs]
