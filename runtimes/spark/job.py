"""A backfill on Spark, driver side: list the raw objects, run the chain on the executors,
write Parquet and dead-letters, replace what an earlier backfill wrote for the same range.

Runs wherever the Spark driver runs (``headwater backfill`` on the submitting machine, or
the cluster's driver through :mod:`runtimes.spark.main`): it reads the baked manifest and
never the spec, so the cluster needs nothing but the pipeline's artifact.

- Objects: every file under ``<root>/<source prefix>`` (read through Hadoop's FileSystem,
  so every scheme the cluster has a connector for: a folder, ``file://``, ``s3a://``,
  ``gs://``, ``abfss://``) whose key has the pipeline's prefix and suffix and whose
  modification time (the object's arrival) falls in ``[since, until]`` (UTC days). Spark's
  ``binaryFile`` source lists them and reads each object whole into its task; objects are
  grouped into tasks by ``spark.sql.files.maxPartitionBytes``. Hadoop's listing skips
  names starting with ``_`` or ``.`` (its hidden files), which the functions would read.
- Output: ``<output>/<table>/`` Parquet (the declared columns, ``_headwater_id``,
  ``_headwater_object``) and ``<output>/deadletter/<pipeline>/`` NDJSON, both partitioned
  as the sink is (``dt=YYYY-MM-DD``, and ``hr=HH`` for hourly sinks) by the object's
  arrival time, which is what the live sinks' partitions mean.
- Re-running: overwrite by partition. Without ``since``/``until`` both outputs are
  replaced whole; with a range, the partitions the run writes are replaced (Spark's
  dynamic partition overwrite) and in-range partitions it no longer writes are deleted, so
  the output for the range is exactly what this run produced, and partitions outside the
  range are untouched.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core.bootstrap import PipelineSettings
from ..core.engine import Counters
from ..core.envsecrets import secret_env_name
from ..core.tables import FORMATS
from .convert import columns_of
from .task import DEAD, OBJECT_COLUMN, ROW, STATS

__all__ = ["BackfillError", "BackfillReport", "run_backfill"]

DEADLETTER = "deadletter"


class BackfillError(RuntimeError):
    """The backfill cannot run as asked (no columns, output under the source, ...)."""


@dataclass
class BackfillReport:
    pipeline: str
    table_path: str
    deadletter_path: str
    objects: int = 0
    skipped: int = 0  # listed but not the pipeline's (prefix, suffix) or outside the range
    bytes: int = 0
    rows: int = 0
    entries: int = 0  # dead-letter entries written (objects dead-lettered whole count once)
    counters: Counters = field(default_factory=Counters)
    partitions: list[tuple[str, ...]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # stale in-range partitions deleted
    modules: dict[str, set[str]] = field(default_factory=dict)  # module -> files, executors
    foreign: list[str] = field(default_factory=list)  # imported on executors, not shipped
    seconds: float = 0.0


def _day_us(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) * 1_000_000


class _Fs:
    """The few Hadoop FileSystem calls the driver makes (through py4j)."""

    def __init__(self, spark: Any, url: str) -> None:
        jvm = spark.sparkContext._jvm
        self._Path = jvm.org.apache.hadoop.fs.Path
        conf = spark.sparkContext._jsc.hadoopConfiguration()
        self.fs = self._Path(url).getFileSystem(conf)

    def qualify(self, url: str) -> str:
        return str(self.fs.makeQualified(self._Path(url)).toString()).rstrip("/")

    def exists(self, url: str) -> bool:
        return bool(self.fs.exists(self._Path(url)))

    def children(self, url: str) -> list[str]:
        if not self.exists(url):
            return []
        return [str(s.getPath().getName()) for s in self.fs.listStatus(self._Path(url))
                if s.isDirectory()]

    def delete(self, url: str) -> None:
        self.fs.delete(self._Path(url), True)


def _executor(archive: str, payload: Mapping[str, Any]) -> Any:
    """The function each task runs. It is pickled by value (a closure referring to no
    module of ours), so the executor needs no headwater code until it has put the
    artifact first on ``sys.path``; then it imports the task from the artifact."""

    def run(rows: Any) -> Any:
        import os
        import sys

        from pyspark import SparkFiles

        here = [os.path.join(base, archive) for base in (SparkFiles.getRootDirectory(),
                                                          os.getcwd())]
        found = [d for d in here if os.path.isdir(d)]
        if not found:
            raise RuntimeError(f"the pipeline's artifact {archive!r} is not on this executor "
                               f"(looked in {', '.join(here)}); ship it with "
                               f"--archives <zip>#{archive}")
        artifact = found[0]
        if sys.path[:1] != [artifact]:
            # a reused Python worker that ran another artifact: forget its code first
            stale = [p for p in sys.path if p != artifact
                     and os.path.isfile(os.path.join(p, "headwater_manifest.json"))]
            for name, mod in list(sys.modules.items()):
                f = getattr(mod, "__file__", None) or ""
                if any(f.startswith(p + os.sep) for p in stale):
                    del sys.modules[name]
            sys.path[:] = [artifact] + [p for p in sys.path if p not in stale and p != artifact]
        from runtimes.spark.task import process_partition

        return process_partition(rows, payload, artifact)

    return run


def _read_tables(spark: Any, fs: _Fs, lookup: str, settings: PipelineSettings
                 ) -> dict[str, tuple[str, bytes, str]]:
    """The lookup tables the chain names, read on the driver (any scheme) to ship along."""
    out = {}
    for table in sorted(settings.lookup_keys):
        tried = []
        for fmt in FORMATS:
            url = f"{lookup.rstrip('/')}/{table}.{fmt}"
            tried.append(url)
            if fs.exists(url):
                row = spark.read.format("binaryFile").load(url).select("content").head()
                out[table] = (fmt, bytes(row[0]), url)
                break
        else:
            raise BackfillError(f"pipeline {settings.name!r}: lookup table {table!r} not "
                                f"found: looked for {' and '.join(tried)}")
    return out


def _stale(fs: _Fs, base: str, written: set[tuple[str, ...]], partition: str,
           since: dt.date | None, until: dt.date | None) -> list[str]:
    """In-range partition folders under ``base`` that this run did not write."""
    out = []
    for name in fs.children(base):
        if not name.startswith("dt="):
            continue
        try:
            day = dt.date.fromisoformat(name[3:])
        except ValueError:
            continue
        if (since and day < since) or (until and day > until):
            continue
        if partition == "hour":
            out += [f"{base}/{name}/{h}" for h in fs.children(f"{base}/{name}")
                    if h.startswith("hr=") and (name[3:], h[3:]) not in written]
        elif (name[3:],) not in written:
            out.append(f"{base}/{name}")
    return out


def run_backfill(spark: Any, archive_path: str, manifest: Mapping[str, Any], *, root: str,
                 output: str, since: dt.date | None = None, until: dt.date | None = None,
                 lookup: str | None = None, bucket: str | None = None,
                 environ: Mapping[str, str] | None = None,
                 archive_name: str | None = None) -> BackfillReport:
    """Backfill the pipeline of ``manifest`` (the one baked into the artifact at
    ``archive_path``, which is shipped to the executors unless ``archive_name`` says it is
    there already, as with ``--archives zip#name``).

    ``root`` is the bucket (keys are paths relative to it), ``lookup`` the folder of
    lookup tables (default ``<root>/lookup``), ``bucket`` the name the rows' ids use
    (default ``root`` as given, as ``headwater run --root`` does). Secrets named in the
    spec are read from ``environ`` here and shipped to the tasks.
    """
    import time

    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    started = time.perf_counter()
    settings = PipelineSettings.from_manifest(manifest)
    spec = manifest["pipeline"]
    partition = spec["sink"].get("partition", "day")
    if not settings.columns:
        raise BackfillError(f"pipeline {settings.name!r}: a backfill writes Parquet, which "
                            "has a fixed schema: declare sink.columns (as the Glue and "
                            "BigQuery sinks need too)")
    if partition == "none" and (since or until):
        raise BackfillError(f"pipeline {settings.name!r}: its sink is not partitioned "
                            "(sink.partition: none), so a backfill replaces its whole output "
                            "and cannot take --since/--until")
    if since and until and since > until:
        raise BackfillError(f"--since {since} is after --until {until}")
    columns = columns_of(settings.columns)
    fs = _Fs(spark, root)
    qroot = fs.qualify(root)
    out_fs = _Fs(spark, output)
    qout = out_fs.qualify(output)
    source = f"{qroot}/{settings.prefix}"
    if qout.startswith(source.rstrip("/")) or source.startswith(qout + "/"):
        raise BackfillError(f"--output {output} and the pipeline's objects ({source}) "
                            "overlap: the output would be read as input")
    table_path = f"{qout}/{settings.table}"
    dead_path = f"{qout}/{DEADLETTER}/{settings.name}"
    report = BackfillReport(settings.name, table_path, dead_path)

    env = os.environ if environ is None else environ
    secrets = {v: env[v] for name in (spec.get("secrets") or {})
               if env.get(v := secret_env_name(name))}
    tables = _read_tables(spark, fs, lookup or f"{qroot}/lookup", settings)
    if archive_name is None:
        archive_name = os.path.basename(archive_path)
        spark.sparkContext.addArchive(archive_path)
    payload = {"root": qroot, "bucket": root if bucket is None else bucket,
               "partition": partition, "secrets": secrets, "tables": tables,
               "since_us": _day_us(since) if since else None,
               "until_us": _day_us(until + dt.timedelta(days=1)) if until else None}

    listed = source if settings.prefix.endswith("/") else source.rsplit("/", 1)[0]
    pcols = {"day": ["dt"], "hour": ["dt", "hr"], "none": []}[partition]
    if fs.exists(listed):
        reader = spark.read.format("binaryFile").option("recursiveFileLookup", "true")
        # a coarse filter at listing time (a second either side); the task applies the
        # exact day bounds
        if since:
            reader = reader.option("modifiedAfter", (dt.datetime.combine(
                since, dt.time()) - dt.timedelta(seconds=1)).isoformat()).option("timeZone", "UTC")
        if until:
            reader = reader.option("modifiedBefore", (dt.datetime.combine(
                until + dt.timedelta(days=1), dt.time()) + dt.timedelta(seconds=1)
            ).isoformat()).option("timeZone", "UTC")
        objects = reader.load(listed).select(
            "path", F.unix_micros("modificationTime").alias("mtime"), "length", "content")
        results = objects.rdd.mapPartitions(_executor(archive_name, payload))
    else:
        results = spark.sparkContext.emptyRDD()
    results = results.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        row_parts: set[tuple[str, ...]] = set()
        dead_parts: set[tuple[str, ...]] = set()
        for _kind, _parts, s in results.filter(lambda t: t[0] == STATS).collect():
            report.objects += s["objects"]
            report.skipped += s["skipped"]
            report.bytes += s["bytes"]
            report.rows += s["rows"]
            report.entries += s["entries"]
            report.counters.add(Counters(**s["counters"]))
            row_parts |= s["row_parts"]
            dead_parts |= s["dead_parts"]
            for mod, path in s["modules"].items():
                report.modules.setdefault(mod, set()).add(path)
            report.foreign = sorted(set(report.foreign) | set(s["foreign"]))
        if report.counters.written != report.rows:
            raise BackfillError(f"{report.counters.written} records written but "
                                f"{report.rows} rows kept")

        # INT96 (Spark's default) is deprecated in Parquet; Athena, BigQuery and Data
        # Explorer all read microsecond timestamps adjusted to UTC
        spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        ranged = since is not None or until is not None
        mode = "dynamic" if ranged else "static"
        row_schema = ", ".join([f"`{c.name}` {c.ddl}" for c in columns]
                               + ["`_headwater_id` STRING", f"`{OBJECT_COLUMN}` STRING"]
                               + [f"`{p}` STRING" for p in pcols])
        rows = results.filter(lambda t: t[0] == ROW).map(lambda t: (*t[2], *t[1]))
        (spark.createDataFrame(rows, row_schema, verifySchema=False)
         .write.mode("overwrite").option("partitionOverwriteMode", mode)
         .partitionBy(*pcols).parquet(table_path))
        lines = results.filter(lambda t: t[0] == DEAD).map(lambda t: (t[2], *t[1]))
        dead_schema = ", ".join(["`value` STRING"] + [f"`{p}` STRING" for p in pcols])
        (spark.createDataFrame(lines, dead_schema, verifySchema=False)
         .write.mode("overwrite").option("partitionOverwriteMode", mode)
         .partitionBy(*pcols).text(dead_path))
        if ranged:
            for base, written in ((table_path, row_parts), (dead_path, dead_parts)):
                for stale in _stale(out_fs, base, written, partition, since, until):
                    out_fs.delete(stale)
                    report.removed.append(stale)
        report.partitions = sorted(row_parts | dead_parts)
    finally:
        results.unpersist()
    report.seconds = time.perf_counter() - started
    return report
