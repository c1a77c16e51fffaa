"""Buckets and the warehouse sink of the AWS component (S3, Glue, Firehose).

Functions here create children through the component's ``make`` callable, which sets
``parent`` and merges the pipeline's overrides, so they stay plain functions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from . import policy

__all__ = ["Sink", "bucket_prefix", "dedup_query", "firehose_prefixes", "glue_name", "presto_view",
           "secure_bucket", "sink"]

Make = Callable[..., Any]

# Firehose refuses format conversion with buffers under 64 MiB; 128 MiB gives Athena
# larger Parquet files for the same delivery latency (the interval flushes first when idle).
BUFFER_MB = 128
BUFFER_S = 300
PARQUET = {
    "input_format": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    "output_format": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    "ser_de_info": {"serialization_library":
                    "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"},
}


def bucket_prefix(name: str, role: str) -> str:
    """An S3 ``bucket_prefix`` (at most 37 characters, no ``_``) for pipeline ``name``."""
    clean = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:28] or "hw"
    return f"{clean}-{role}-"


def glue_name(*parts: str) -> str:
    """Glue/Athena identifiers are lower case letters, digits and ``_``."""
    return re.sub(r"[^a-z0-9_]+", "_", "_".join(parts).lower()).strip("_")[:255]


def firehose_prefixes(table: str, partition: str) -> tuple[str, str]:
    """(data prefix, error prefix) Firehose writes under, in the curated bucket.

    The partition folders use Firehose's arrival time (``!{timestamp:...}``), which is also
    what partition projection expects; error objects go apart so that the Glue table,
    located at ``<table>/``, never reads them.
    """
    parts = {"day": "dt=!{timestamp:yyyy-MM-dd}/",
             "hour": "dt=!{timestamp:yyyy-MM-dd}/hr=!{timestamp:HH}/", "none": ""}[partition]
    errors = f"firehose-errors/{table}/"
    if parts:  # Firehose wants expressions in both prefixes or in neither
        errors += "!{firehose:error-output-type}/dt=!{timestamp:yyyy-MM-dd}/"
    return f"{table}/{parts}", errors


# every row's stable id (bucket, key, version, line, fan-out index), written by the function
ID_COLUMN = "_headwater_id"
# sink.columns types (Hive names in Glue) as Athena's Trino engine names them in a view
TRINO_TYPES = {"string": "varchar", "int": "integer"}


def dedup_query(database: str, table: str, columns: list[str]) -> str:
    """One row per ``_headwater_id`` (Athena SQL). Firehose has no idempotent write: a
    function killed between Firehose taking a batch and its checkpoint resends that batch
    on redelivery, with the same ids; readers who must never see a copy read this view.
    ``columns``: the table's columns, partition keys included, in order."""
    cols = ", ".join(f'"{c}"' for c in columns)
    return (f'SELECT {cols} FROM (SELECT *, row_number() OVER (PARTITION BY "{ID_COLUMN}") '
            f'AS "_row" FROM "{database}"."{table}") WHERE "_row" = 1')


def presto_view(database: str, sql: str, columns: Mapping[str, str]) -> str:
    """The ``ViewOriginalText`` by which Athena knows a Glue table as a view: its SQL and
    columns (Trino types), base64 JSON in a comment, as Athena's ``CREATE VIEW`` writes it."""
    import base64
    import json

    doc = {"originalSql": sql, "catalog": "awsdatacatalog", "schema": database,
           "columns": [{"name": c, "type": TRINO_TYPES.get(t, t)} for c, t in columns.items()]}
    return "/* Presto View: " + base64.b64encode(json.dumps(doc).encode()).decode() + " */"


def secure_bucket(make: Make, key: str, name: str, *, prefix: str, kms_key: str | None,
                  expire: tuple[str, int] | None = None) -> aws.s3.Bucket:
    """A private, encrypted, TLS-only bucket. ``expire=(prefix, days)`` makes it a raw
    bucket: versioned (the function reads exactly the version a notification names, and an
    overwritten object stays replayable), with the raw-copy retention rule for current and
    noncurrent versions. Only the bucket itself takes overrides: the guards are the point."""
    bucket = make(key, aws.s3.Bucket, name, {"bucket_prefix": prefix, "force_destroy": False})
    make(None, aws.s3.BucketPublicAccessBlock, f"{name}-public-access", {
        "bucket": bucket.id, "block_public_acls": True, "block_public_policy": True,
        "ignore_public_acls": True, "restrict_public_buckets": True})
    by_default: dict[str, Any] = {"sse_algorithm": "AES256"}
    if kms_key:
        by_default = {"sse_algorithm": "aws:kms", "kms_master_key_id": kms_key}
    make(None, aws.s3.BucketServerSideEncryptionConfiguration, f"{name}-encryption", {
        "bucket": bucket.id,
        "rules": [{"apply_server_side_encryption_by_default": by_default,
                   "bucket_key_enabled": bool(kms_key)}]})
    make(None, aws.s3.BucketPolicy, f"{name}-tls-only",
         {"bucket": bucket.id, "policy": policy.tls_only(bucket.arn)})
    if expire is not None:
        where, days = expire
        versioning = make(None, aws.s3.BucketVersioning, f"{name}-versioning", {
            "bucket": bucket.id, "versioning_configuration": {"status": "Enabled"}})
        make(None, aws.s3.BucketLifecycleConfiguration, f"{name}-retention", {
            "bucket": bucket.id,
            "rules": [
                {"id": "expire-raw-copies", "status": "Enabled", "filter": {"prefix": where},
                 "expiration": {"days": days},
                 "noncurrent_version_expiration": {"noncurrent_days": days}},
                {"id": "abort-incomplete-uploads", "status": "Enabled", "filter": {"prefix": ""},
                 "abort_incomplete_multipart_upload": {"days_after_initiation": 7}},
            ]}, depends_on=[versioning])
    return bucket


@dataclass
class Sink:
    """What :func:`sink` created."""

    stream: aws.kinesis.FirehoseDeliveryStream
    role: aws.iam.Role
    database: aws.glue.CatalogDatabase
    table: aws.glue.CatalogTable
    view: aws.glue.CatalogTable


def sink(make: Make, name: str, *, table: str, partition: str, columns: Mapping[str, str],
         database: str, bucket_name: pulumi.Input[str], bucket_arn: pulumi.Input[str],
         arns: Mapping[str, pulumi.Output[str]], kms_key: str | None) -> Sink:
    """Glue database and table (Parquet, projected partitions) and the Firehose stream
    that converts JSON records to Parquet into ``s3://<bucket>/<table>/dt=.../``.

    ``arns`` holds ``partition``, ``region`` and ``account`` (Outputs) to spell Glue ARNs.
    """
    data_prefix, error_prefix = firehose_prefixes(table, partition)
    db = make("glue_database", aws.glue.CatalogDatabase, f"{name}-glue-database", {
        "name": database,
        "description": f"headwater pipeline {name}: curated tables (Parquet, written by Firehose)"})
    params: dict[str, Any] = {"classification": "parquet", "EXTERNAL": "TRUE"}
    keys: list[dict[str, str]] = []
    if partition != "none":
        # Partition projection: Athena computes partitions from the query, so no
        # MSCK REPAIR / crawler is needed as Firehose adds a folder per day.
        keys.append({"name": "dt", "type": "string"})
        params.update({
            "projection.enabled": "true",
            "projection.dt.type": "date",
            "projection.dt.format": "yyyy-MM-dd",
            "projection.dt.range": "2024-01-01,NOW",
            "projection.dt.interval": "1",
            "projection.dt.interval.unit": "DAYS",
        })
        template = "s3://{bucket}/" + table + "/dt=${dt}/"
        if partition == "hour":
            keys.append({"name": "hr", "type": "string"})
            params.update({"projection.hr.type": "integer", "projection.hr.range": "0,23",
                           "projection.hr.digits": "2"})
            template += "hr=${hr}/"
        params["storage.location.template"] = pulumi.Output.from_input(bucket_name).apply(
            lambda b: template.replace("{bucket}", b))
    glue_table = make("glue_table", aws.glue.CatalogTable, f"{name}-glue-table", {
        "name": table.lower(),
        "database_name": db.name,
        "table_type": "EXTERNAL_TABLE",
        "parameters": params,
        "partition_keys": keys,
        "storage_descriptor": {
            **PARQUET,
            "location": pulumi.Output.concat("s3://", bucket_name, f"/{table}/"),
            "columns": [{"name": c, "type": t} for c, t in {**columns, ID_COLUMN: "string"}.items()],
        },
    })

    # the de-duplicating view <table>_dedup, over the table's columns and partition keys
    view_columns = {**{c: t.strip().lower() for c, t in columns.items()}, ID_COLUMN: "string",
                    **{k["name"]: k["type"] for k in keys}}
    view = make(None, aws.glue.CatalogTable, f"{name}-dedup-view", {
        "name": f"{table.lower()}_dedup",
        "database_name": db.name,
        "description": f"{table}, one row per {ID_COLUMN}",
        "table_type": "VIRTUAL_VIEW",
        "parameters": {"presto_view": "true", "comment": "Presto View"},
        "view_original_text": pulumi.Output.all(db.name, glue_table.name).apply(
            lambda p: presto_view(p[0], dedup_query(p[0], p[1], list(view_columns)),
                                  view_columns)),
        "view_expanded_text": "/* Presto View */",
        "storage_descriptor": {
            "columns": [{"name": c, "type": t} for c, t in view_columns.items()],
            "ser_de_info": {"name": "-", "serialization_library": "-"}},
    })

    role = make("firehose_role", aws.iam.Role, f"{name}-firehose-role", {
        "assume_role_policy": policy.assume_role("firehose.amazonaws.com", arns["account"]),
        "description": f"Firehose delivery of headwater pipeline {name}"})
    glue_arn = pulumi.Output.concat("arn:", arns["partition"], ":glue:", arns["region"], ":",
                                    arns["account"])
    statements = [
        policy.statement(
            ["glue:GetTable", "glue:GetTableVersion", "glue:GetTableVersions"],
            [pulumi.Output.concat(glue_arn, ":catalog"),
             pulumi.Output.concat(glue_arn, ":database/", db.name),
             pulumi.Output.concat(glue_arn, ":table/", db.name, "/", glue_table.name)],
            sid="ReadSchema"),
        policy.statement(["s3:GetBucketLocation", "s3:ListBucket",
                          "s3:ListBucketMultipartUploads"], [bucket_arn], sid="CuratedBucket"),
        policy.statement(["s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject"],
                         [pulumi.Output.concat(bucket_arn, f"/{table}/*"),
                          pulumi.Output.concat(bucket_arn, f"/firehose-errors/{table}/*")],
                         sid="WriteTableAndErrors"),
    ]
    if kms_key:
        statements.append(policy.statement(["kms:Decrypt", "kms:GenerateDataKey"], [kms_key],
                                           sid="CuratedBucketKey"))
    role_policy = make(None, aws.iam.RolePolicy, f"{name}-firehose-policy",
                       {"role": role.id, "policy": policy.document(statements)})

    encryption: dict[str, Any] = {"enabled": True, "key_type": "AWS_OWNED_CMK"}
    if kms_key:
        encryption = {"enabled": True, "key_type": "CUSTOMER_MANAGED_CMK", "key_arn": kms_key}
    stream = make("stream", aws.kinesis.FirehoseDeliveryStream, f"{name}-stream", {
        "destination": "extended_s3",
        "server_side_encryption": encryption,
        "extended_s3_configuration": {
            "role_arn": role.arn,
            "bucket_arn": bucket_arn,
            "prefix": data_prefix,
            "error_output_prefix": error_prefix,
            "buffering_size": BUFFER_MB,
            "buffering_interval": BUFFER_S,
            # Parquet compresses itself (Snappy); Firehose must not wrap it again.
            "compression_format": "UNCOMPRESSED",
            **({"kms_key_arn": kms_key} if kms_key else {}),
            "data_format_conversion_configuration": {
                "enabled": True,
                "input_format_configuration": {"deserializer": {"open_x_json_ser_de": {}}},
                "output_format_configuration": {"serializer": {"parquet_ser_de": {}}},
                "schema_configuration": {
                    "database_name": db.name, "table_name": glue_table.name,
                    "role_arn": role.arn, "region": arns["region"]},
            },
        },
    }, depends_on=[role_policy])
    return Sink(stream=stream, role=role, database=db, table=glue_table, view=view)
