"""The backfill's Parquet column conversions (no Spark needed) and its packaging layout."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from headwater.packaging import SparkLayout, layout_for
from runtimes.spark.convert import Column, Misfit
from runtimes.spark.task import ParquetRows, keys_of, partition_values


@pytest.mark.parametrize("declared, value, stored", [
    ("bigint", "12", 12), ("bigint", 12.0, 12), ("bigint", " -3 ", -3),
    ("double", "1.5", 1.5), ("double", 2, 2.0),
    ("boolean", "T", True), ("boolean", 0, False),
    ("timestamp", "2024-05-01T10:00:00+02:00", dt.datetime(2024, 5, 1, 8, tzinfo=dt.UTC)),
    ("timestamp", "2024-05-01", dt.datetime(2024, 5, 1, tzinfo=dt.UTC)),
    ("date", "2024-05-01T23:00:00", dt.date(2024, 5, 1)),
    ("decimal(5,2)", "1.005", Decimal("1.01")),
    ("string", {"a": [1]}, '{"a":[1]}'), ("string", True, "true"),
])
def test_values_that_fit_are_stored_as_the_local_warehouse_stores_them(declared, value, stored):
    assert Column("c", declared).convert(value) == stored


@pytest.mark.parametrize("declared, value", [
    ("bigint", "1.5"), ("bigint", True), ("bigint", 2 ** 63), ("bigint", "x"),
    ("double", "lots"), ("boolean", "maybe"), ("timestamp", "May 1st"),
    ("decimal(3,2)", "12.5"), ("date", "2024-13-01"),
])
def test_values_that_do_not_fit_are_refused(declared, value):
    with pytest.raises(Misfit):
        Column("c", declared).convert(value)


def test_the_sink_reports_misfits_as_final_failures_with_the_local_message():
    sink = ParquetRows("orders", [Column("n", "bigint")], 10)
    sink.key = "raw/a.ndjson"
    failures = sink.write([{"n": 1, "_headwater_id": "x-1-0"}, {"n": "1.5"}])
    assert sink.rows == [(1, "x-1-0", "raw/a.ndjson")]
    assert [(f.index, f.retryable) for f in failures] == [(1, False)]
    assert failures[0].message == "column 'n' (BIGINT) of table 'orders' cannot store str '1.5'"


def test_partitions_are_the_arrival_day_and_hour_in_utc():
    us = int(dt.datetime(2024, 5, 1, 23, 30, tzinfo=dt.UTC).timestamp()) * 1_000_000
    assert partition_values(us, "day") == ("2024-05-01",)
    assert partition_values(us, "hour") == ("2024-05-01", "23")
    assert partition_values(us, "none") == ()
    assert keys_of("s3a://raw/raw/orders/a.json", "s3a://raw") == "raw/orders/a.json"
    assert keys_of("s3a://rawer/x", "s3a://raw") is None


def test_the_spark_layout_ships_the_spark_runtime_and_leaves_pyspark_to_the_cluster():
    layout = layout_for("spark", "3.11", "x86_64")
    assert isinstance(layout, SparkLayout)
    assert "runtimes/spark" in layout.shipped_folders()
    assert {"pyspark", "pyarrow"} <= layout.provided
    assert "backfill_main.py" in layout.extra_files({})
