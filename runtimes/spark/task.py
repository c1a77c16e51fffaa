"""What runs in a Spark task: the pipeline's engine over the objects of one partition.

The executor imports this from the pipeline's artifact (the same packaging step as the
function's, shipped as the job's archive), builds the engine from the artifact's baked
manifest once per task, and runs every object of the partition through it. Each object
gives:

- ``(ROW, parts, values)``: a record the sink took, its values in column order plus
  ``_headwater_id`` and ``_headwater_object`` (the object key); ``parts`` are the
  partition values (``dt``, ``hr``) of the object's arrival time (its modification time);
- ``(DEAD, parts, line)``: a dead-letter entry as an NDJSON line;

and the task ends with one ``(STATS, None, {...})``: counters, objects, bytes, and where
the chain's modules were imported from (the artifact, never the submitter's code).

An error that the engine does not turn into a dead-letter (a lookup table or secret that
is missing, an unreadable object, a transform raising ``Retryable``) fails the task, so
Spark retries it and, after its attempts, fails the job: nothing is lost silently.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from transforms.contract import Context

from ..core.bootstrap import PipelineSettings, engine_from_manifest
from ..core.codec import dumps
from ..core.engine import ID_FIELD, Counters, Failure
from ..core.envsecrets import env_secret
from ..core.manifest import MANIFEST_NAME, load_manifest
from ..core.tables import LookupUnavailable, TableLookup
from .convert import Column, Misfit, columns_of

__all__ = ["DEAD", "ROW", "STATS", "keys_of", "partition_values", "process_partition"]

ROW, DEAD, STATS = 0, 1, 2
OBJECT_COLUMN = "_headwater_object"
# what a function never imports; found in a task's interpreter, it came from elsewhere
FOREIGN = ("headwater.", "pydantic", "typer", "rich", "pulumi", "duckdb", "yaml", "components")


class ParquetRows:
    """The sink: converts each record to the declared columns, keeps the rows, and
    reports values that do not fit as non-retryable failures (dead-lettered)."""

    def __init__(self, table: str, columns: list[Column], max_batch: int) -> None:
        self.table = table
        self.columns = columns
        self.max_batch = max_batch
        self.rows: list[tuple[Any, ...]] = []
        self.key = ""

    def write(self, records: list[dict[str, Any]]) -> list[Failure]:
        failures = []
        for i, rec in enumerate(records):
            values = []
            for col in self.columns:
                v = rec.get(col.name)
                if v is None:
                    values.append(None)
                    continue
                try:
                    values.append(col.convert(v))
                except Misfit:
                    failures.append(Failure(
                        i, "ConversionError",
                        f"column {col.name!r} ({col.sql}) of table {self.table!r} cannot "
                        f"store {type(v).__name__} {v!r}", retryable=False))
                    break
            else:
                values.append(rec.get(ID_FIELD))
                values.append(self.key)
                self.rows.append(tuple(values))
        return failures


class Entries:
    """The dead-letter port: keeps the entries of the object in progress."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def write(self, pipeline: str, bucket: str, key: str, entries: list[dict[str, Any]]) -> None:
        self.entries.extend(entries)


def partition_values(mtime_us: int, partition: str) -> tuple[str, ...]:
    """``(dt,)``, ``(dt, hr)`` or ``()`` of an arrival time in microseconds (UTC)."""
    if partition == "none":
        return ()
    t = time.gmtime(mtime_us // 1_000_000)
    day = time.strftime("%Y-%m-%d", t)
    return (day, time.strftime("%H", t)) if partition == "hour" else (day,)


def keys_of(path: str, root: str) -> str | None:
    """The object key of ``path`` under ``root`` (both as Hadoop spells them)."""
    head = root.rstrip("/") + "/"
    return path[len(head):] if path.startswith(head) else None


def _tables(shipped: Mapping[str, tuple[str, bytes, str]]) -> Any:
    def load(table: str) -> tuple[str, bytes, str]:
        try:
            return shipped[table]
        except KeyError:
            raise LookupUnavailable(f"lookup table {table!r} was not found beside the "
                                    "objects when the backfill started") from None
    return load


def _modules(manifest: Mapping[str, Any]) -> dict[str, str]:
    names = ["runtimes.core.engine", "runtimes.spark.task", "orjson"]
    names += [s["ref"].partition(":")[0] for s in manifest.get("steps", [])]
    return {n: getattr(sys.modules.get(n), "__file__", None) or "" for n in names}


def process_partition(rows: Iterable[Any], payload: Mapping[str, Any],
                      artifact: str) -> Iterator[tuple[int, tuple[str, ...] | None, Any]]:
    """Run the objects of one partition (rows of ``path``, ``mtime`` in microseconds,
    ``length``, ``content``) through the engine of the manifest in ``artifact``."""
    manifest = load_manifest(os.path.join(artifact, MANIFEST_NAME))
    settings = PipelineSettings.from_manifest(manifest)
    sink = ParquetRows(settings.table, columns_of(settings.columns), settings.sink_batch)
    dead = Entries()
    environ = {**os.environ, **payload["secrets"]}
    ctx = Context(pipeline=settings.name,
                  lookup=TableLookup(_tables(payload["tables"]),
                                     {t: k for t, k in settings.lookup_keys.items() if k}),
                  secret=env_secret(environ, hint="set {var} where `headwater backfill` "
                                                  "runs, or in the executors' environment"))
    engine = engine_from_manifest(manifest, sink=sink, deadletter=dead, ctx=ctx)
    total = Counters()
    stats = {"objects": 0, "skipped": 0, "bytes": 0, "entries": 0, "rows": 0,
             "row_parts": set(), "dead_parts": set()}
    partition, root, bucket = payload["partition"], payload["root"], payload["bucket"]
    since_us, until_us = payload["since_us"], payload["until_us"]
    for row in rows:
        path, mtime, content = row[0], row[1], row[3]
        key = keys_of(path, root)
        if key is None or not settings.wants(key) or \
                (since_us is not None and mtime < since_us) or \
                (until_us is not None and mtime >= until_us):
            stats["skipped"] += 1
            continue
        data = bytes(content)
        sink.rows, sink.key, dead.entries = [], key, []
        version = hashlib.sha256(data).hexdigest()  # as `headwater run` names a version
        c = engine.process_object(io.BytesIO(data), key, bucket, version)
        if not c.balanced():
            raise RuntimeError(f"object {key!r}: counters do not balance: {c.as_dict()}")
        if len(sink.rows) != c.written:
            raise RuntimeError(f"object {key!r}: {c.written} records written but "
                               f"{len(sink.rows)} rows kept")
        parts = partition_values(mtime, partition)
        for values in sink.rows:
            yield ROW, parts, values
        for e in dead.entries:
            yield DEAD, parts, dumps(e).decode()
        if sink.rows:
            stats["row_parts"].add(parts)
        if dead.entries:
            stats["dead_parts"].add(parts)
        stats["rows"] += len(sink.rows)
        stats["entries"] += len(dead.entries)
        stats["objects"] += 1
        stats["bytes"] += len(data)
        total.add(c)
    stats["counters"] = total.as_dict()
    stats["modules"] = _modules(manifest)
    stats["foreign"] = sorted(m for m in sys.modules if m.startswith(FOREIGN))
    yield STATS, None, stats
