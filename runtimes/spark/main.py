"""``spark-submit`` driver of a backfill on a cluster (EMR Serverless, Dataproc
Serverless, Synapse, Databricks): the artifact's ``backfill_main.py`` puts the unpacked
artifact on ``sys.path`` and calls :func:`main`, which runs :func:`run_backfill` with the
manifest baked into that artifact. Prints the report as one JSON line; exits 1 on error.

    spark-submit --archives s3://b/orders-spark.zip#headwater \\
        s3://b/backfill_main.py --root s3a://raw --output s3a://curated/backfill \\
        --since 2024-01-01 --until 2024-06-30
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys

from ..core.manifest import MANIFEST_NAME, load_manifest
from .job import BackfillError, run_backfill

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="backfill_main.py", description=__doc__)
    ap.add_argument("--root", required=True, help="the bucket: s3a://raw, gs://raw, abfss://...")
    ap.add_argument("--output", required=True, help="where Parquet and dead-letters go")
    ap.add_argument("--since", type=dt.date.fromisoformat)
    ap.add_argument("--until", type=dt.date.fromisoformat)
    ap.add_argument("--lookup", help="folder of lookup tables (default <root>/lookup)")
    ap.add_argument("--bucket", help="bucket name the row ids use (default --root)")
    ap.add_argument("--archive", default=os.environ.get("HEADWATER_ARCHIVE", "headwater"),
                    help="the #name the artifact was shipped under with --archives")
    args = ap.parse_args(argv)
    from pyspark.sql import SparkSession

    # the artifact the entry put first on sys.path, else the one this module came from
    here = next((p for p in sys.path if os.path.isfile(os.path.join(p, MANIFEST_NAME))),
                os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    manifest = load_manifest(os.path.join(here, MANIFEST_NAME))
    spark = SparkSession.builder.appName(f"headwater backfill {manifest['pipeline']['name']}") \
        .getOrCreate()
    try:
        report = run_backfill(spark, "", manifest, root=args.root, output=args.output,
                              since=args.since, until=args.until, lookup=args.lookup,
                              bucket=args.bucket, archive_name=args.archive)
    except BackfillError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"pipeline": report.pipeline, "objects": report.objects,
                      "records_in": report.counters.received, "written": report.counters.written,
                      "dropped": report.counters.dropped,
                      "dead_lettered": report.counters.dead_lettered,
                      "table": report.table_path, "deadletter": report.deadletter_path}))
    return 0
