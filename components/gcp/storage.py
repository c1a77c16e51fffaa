"""Buckets and the BigQuery sink of the GCP component.

Functions here create children through the component's ``make`` callable, which sets
``parent`` and merges the pipeline's overrides, so they stay plain functions.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_gcp as gcp

from .checks import bigquery_type

__all__ = ["ID_COLUMN", "Sink", "dedup_query", "schema", "secure_bucket", "sink"]

Make = Callable[..., Any]
ID_COLUMN = "_headwater_id"  # stable per record: bucket, key, generation, line, fan-out


def secure_bucket(make: Make, key: str, name: str, *, region: str,
                  expire: tuple[str, int] | None = None) -> gcp.storage.Bucket:
    """A private bucket: uniform bucket-level access (IAM only, no object ACLs) and public
    access prevention enforced. ``expire=(prefix, days)`` deletes raw objects under the
    prefix after ``days``. Google encrypts every object at rest."""
    rules: list[dict[str, Any]] = [{
        "action": {"type": "AbortIncompleteMultipartUpload"},
        "condition": {"age": 7}}]
    if expire is not None:
        where, days = expire
        rules.append({"action": {"type": "Delete"},
                      "condition": {"age": days, "matches_prefixes": [where]}})
    return make(key, gcp.storage.Bucket, name, {
        "location": region.upper(),
        "uniform_bucket_level_access": True,
        "public_access_prevention": "enforced",
        "force_destroy": False,
        "lifecycle_rules": rules,
    })


def schema(columns: Mapping[str, str]) -> str:
    """The table's schema JSON: the spec's columns (NULLABLE) and the row id."""
    fields = [{"name": c, "type": bigquery_type(t), "mode": "NULLABLE"}
              for c, t in columns.items()]
    fields.append({"name": ID_COLUMN, "type": "STRING", "mode": "NULLABLE",
                   "description": "stable record id (source object, generation, line, "
                                  "fan-out index); the de-duplicating view keys on it"})
    return json.dumps(fields, sort_keys=True)


def dedup_query(project: str, dataset: str, table: str) -> str:
    """One row per ``_headwater_id``: streaming inserts de-duplicate on insertId on a best
    effort basis only, so readers who must never see a duplicate read this view."""
    return (f"SELECT * EXCEPT(_row) FROM (SELECT *, ROW_NUMBER() OVER "
            f"(PARTITION BY {ID_COLUMN}) AS _row FROM `{project}.{dataset}.{table}`) "
            "WHERE _row = 1")


@dataclass
class Sink:
    """What :func:`sink` created."""

    dataset: gcp.bigquery.Dataset
    table: gcp.bigquery.Table
    view: gcp.bigquery.Table


def sink(make: Make, name: str, *, project: pulumi.Input[str], dataset: str, table: str,
         partition: str, columns: Mapping[str, str], region: str,
         clustering: list[str] | None = None) -> Sink:
    """Dataset, table (ingestion-time partitioned by day or hour, clustered on
    ``clustering``) and the de-duplicating view ``<table>_dedup``."""
    ds = make("dataset", gcp.bigquery.Dataset, f"{name}-dataset", {
        "dataset_id": dataset, "location": region,
        "description": f"headwater pipeline {name}: warehouse table and its de-duplicating view",
        "delete_contents_on_destroy": False})
    args: dict[str, Any] = {
        "dataset_id": ds.dataset_id, "table_id": table, "schema": schema(columns),
        "deletion_protection": True,
        "description": f"headwater pipeline {name}: rows streamed by the function"}
    if partition != "none":
        args["time_partitioning"] = {"type": partition.upper()}
    if clustering:
        args["clusterings"] = list(clustering)
    tbl = make("table", gcp.bigquery.Table, f"{name}-table", args)
    view = make("view", gcp.bigquery.Table, f"{name}-dedup-view", {
        "dataset_id": ds.dataset_id, "table_id": f"{table}_dedup", "deletion_protection": False,
        "description": f"{table}, one row per {ID_COLUMN}",
        "view": {"use_legacy_sql": False,
                 "query": pulumi.Output.all(project, ds.dataset_id, tbl.table_id).apply(
                     lambda p: dedup_query(p[0], p[1], p[2]))}})
    return Sink(dataset=ds, table=tbl, view=view)
