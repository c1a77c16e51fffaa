"""Plan-time checks of pipeline specs for AWS, run before any resource is created."""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict

import pulumi_aws as aws

from headwater.spec import PipelineSpec, StackConfig

from ..common import (
    Location,
    PlanError,
    check_no_cycles,
    check_no_recursion,
    check_prefix_overlaps,
    validate_overrides,
)

__all__ = ["CHILDREN", "check_pipeline", "check_stack", "function_name", "locations",
           "lookup_keys", "queue_timeouts"]

# Children that take ``overrides.aws.<key>``; the guards (public access block, encryption,
# TLS-only and queue policies, role policies) take none on purpose.
CHILDREN: dict[str, type] = {
    "bucket": aws.s3.BucketArgs,
    "notification": aws.s3.BucketNotificationArgs,
    "queue": aws.sqs.QueueArgs,
    "dlq": aws.sqs.QueueArgs,
    "function": aws.lambda_.FunctionArgs,
    "log_group": aws.cloudwatch.LogGroupArgs,
    "event_source_mapping": aws.lambda_.EventSourceMappingArgs,
    "role": aws.iam.RoleArgs,
    "lookup_table": aws.dynamodb.TableArgs,
    "idempotency_table": aws.dynamodb.TableArgs,
    "curated_bucket": aws.s3.BucketArgs,
    "glue_database": aws.glue.CatalogDatabaseArgs,
    "glue_table": aws.glue.CatalogTableArgs,
    "firehose_role": aws.iam.RoleArgs,
    "stream": aws.kinesis.FirehoseDeliveryStreamArgs,
    "alarm": aws.cloudwatch.MetricAlarmArgs,
}
# AWS's guidance for SQS event sources: visibility timeout >= 6 x function timeout.
VISIBILITY_FACTOR = 6


def function_name(stack: str, pipeline: str) -> str:
    """The Lambda name (fixed, so the log group ``/aws/lambda/<name>`` exists first)."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", f"headwater-{stack}-{pipeline}")
    if len(name) > 64:
        name = name[:55] + "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return name


def lookup_keys(spec: PipelineSpec) -> dict[str, str]:
    """Lookup table -> its DynamoDB key attribute: the step's ``key`` setting, else ``key``."""
    return {table: key or "key" for table, key in spec.lookup_keys().items()}


def _override(spec: PipelineSpec, child: str, arg: str) -> object:
    return (spec.overrides.get("aws", {}).get(child) or {}).get(arg)


def queue_timeouts(spec: PipelineSpec) -> tuple[int, int]:
    """(function timeout, queue visibility timeout) after overrides."""
    timeout = _override(spec, "function", "timeout")
    timeout = timeout if isinstance(timeout, int) else spec.limits.timeout_s
    return timeout, VISIBILITY_FACTOR * timeout


def locations(spec: PipelineSpec) -> tuple[Location, list[Location]]:
    """The pipeline's source and every location it writes to. Buckets the pipeline creates
    are stand-ins (``<orders raw bucket>``): distinct from every other bucket."""
    src = spec.source
    raw = src.bucket or _override(spec, "bucket", "bucket") or f"<{spec.name} raw bucket>"
    curated = (spec.sink.existing or _override(spec, "curated_bucket", "bucket")
               or f"<{spec.name} curated bucket>")
    table = spec.sink.table
    outs = [
        Location("sink", str(curated), f"{table}/"),
        Location("Firehose error", str(curated), f"firehose-errors/{table}/"),
        Location("dead-letter", str(spec.deadletter.bucket or curated),
                 f"{spec.deadletter.prefix}{spec.name}/"),
    ]
    return Location("source", str(raw), src.prefix, src.suffix), outs


def check_pipeline(spec: PipelineSpec, kms_key: str | None = None) -> None:
    """Refuse, with what to change, a pipeline spec the AWS component cannot deploy."""
    where = f"pipeline {spec.name!r}"
    validate_overrides(where, spec.overrides.get("aws", {}), CHILDREN)
    source, outputs = locations(spec)
    check_no_recursion(spec.name, source, outputs)
    if not spec.sink.columns:
        raise PlanError(
            f"{where}: sink.columns is empty, but Firehose converts records to Parquet "
            "through a Glue table whose schema comes from sink.columns. List the columns, "
            "e.g. sink: {table: orders, columns: {order_id: string, value_cents: bigint}}.")
    timeout, visibility = queue_timeouts(spec)
    vis = _override(spec, "queue", "visibility_timeout_seconds")
    if isinstance(vis, int) and vis < VISIBILITY_FACTOR * timeout:
        raise PlanError(
            f"{where}: overrides.queue.visibility_timeout_seconds={vis} is below "
            f"{VISIBILITY_FACTOR} x the function timeout ({timeout}s) = {visibility}; a message "
            "would reappear while still being processed. Raise it or lower the timeout.")
    if spec.limits.batch_size > 10 and spec.limits.batching_window_s < 1:
        raise PlanError(
            f"{where}: limits.batch_size={spec.limits.batch_size} needs "
            "limits.batching_window_s >= 1 (SQS event sources take more than 10 messages "
            "only with a batching window).")
    unknown = sorted(set(spec.lookups) - set(lookup_keys(spec)))
    if unknown:
        raise PlanError(f"{where}: lookups names {', '.join(unknown)}, which no transform "
                        f"uses; tables used: {', '.join(lookup_keys(spec)) or 'none'}.")
    if kms_key is not None and not kms_key.startswith("arn:"):
        raise PlanError(
            f"headwater:kms_key must be a KMS key ARN (IAM policies name keys by ARN), "
            f"not {kms_key!r}.")


def check_stack(stack: StackConfig) -> None:
    """Every pipeline's checks, then sources that overlap and rings of pipelines."""
    by_bucket: dict[str, dict[str, Location]] = defaultdict(dict)
    for spec in stack.pipelines:
        check_pipeline(spec, stack.kms_key)
        source, _ = locations(spec)
        by_bucket[source.bucket][spec.name] = source
    for sources in by_bucket.values():
        check_prefix_overlaps(sources)
    check_no_cycles({spec.name: locations(spec) for spec in stack.pipelines})
