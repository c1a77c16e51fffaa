"""``headwater backfill``'s plan side: build the pipeline's Spark artifact (the same
packaging step as its function's, :class:`~headwater.packaging.SparkLayout`), start or join
a Spark session, and run :func:`runtimes.spark.job.run_backfill` with the manifest baked
into that artifact."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
import zipfile
from pathlib import Path
from typing import Any

from runtimes.core.manifest import MANIFEST_NAME
from runtimes.spark.job import BackfillError, BackfillReport, run_backfill

from .packaging import Artifact, build_pipeline_artifact

__all__ = ["BackfillError", "BackfillReport", "backfill", "build_spark_artifact", "spark_session"]


def build_spark_artifact(stack: Any, pipeline: str, out_dir: str | Path, *,
                         python: str | None = None, arch: str | None = None,
                         registry: Any | None = None, **options: Any) -> Artifact:
    """``<out_dir>/<pipeline>-spark.zip`` for the cluster's Python (default: this one)."""
    spec = stack.pipeline(pipeline)
    return build_pipeline_artifact(
        stack, spec, out_dir, cloud="spark",
        python=python or f"{sys.version_info.major}.{sys.version_info.minor}",
        arch=arch or platform.machine(), registry=registry, **options)


def spark_session(master: str | None, app: str = "headwater backfill") -> Any:
    """The active session, or a new one on ``master`` (``local[*]`` when none is given)."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None and master is None:
        return active
    builder = SparkSession.builder.appName(app).master(master or "local[*]")
    if (master or "local").startswith("local"):
        # executors here are this machine's: they run this interpreter (pyspark's default
        # is whatever `python3` is on PATH), read when the context starts
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = builder.config("spark.ui.enabled", "false")
    return builder.getOrCreate()


def backfill(stack: Any, pipeline: str, *, root: str, output: str, spark: Any,
             since: dt.date | None = None, until: dt.date | None = None,
             lookup: str | None = None, artifacts: str | Path = "dist/spark",
             registry: Any | None = None, **options: Any) -> tuple[BackfillReport, Artifact]:
    """Build (or reuse) the artifact, then backfill ``pipeline`` of ``stack``."""
    artifact = build_spark_artifact(stack, pipeline, artifacts, registry=registry, **options)
    with zipfile.ZipFile(artifact.path) as zf:
        manifest = json.loads(zf.read(MANIFEST_NAME))
    # one name per content: an executor never mistakes an earlier build for this one
    shipped = artifact.path.with_name(f"{artifact.path.stem}-{artifact.sha256[:12]}.zip")
    if not shipped.is_file():
        shipped.write_bytes(artifact.path.read_bytes())
    report = run_backfill(spark, str(shipped), manifest, root=root, output=output,
                          since=since, until=until, lookup=lookup)
    return report, artifact
