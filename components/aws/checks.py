"""Plan-time checks of pipeline specs for AWS, run before any resource is created."""

from __future__ import annotations

import hashlib
import re

import pulumi_aws as aws

from headwater.spec import PipelineSpec, StackConfig

from ..checks import check_stack as neutral_check_stack
from ..common import Location, PlanError, validate_overrides

__all__ = ["CHILDREN", "RULES", "AwsRules", "check_pipeline", "check_stack", "function_name", "locations",
           "lookup_keys", "queue_timeouts"]

# Children that take ``overrides.aws.<key>``; the guards (public access block, encryption,
# TLS-only and queue policies, role policies) take none on purpose.
CHILDREN: dict[str, type] = {
    "bucket": aws.s3.BucketArgs,
    "notification": aws.s3.BucketNotificationArgs,
    "rule": aws.cloudwatch.EventRuleArgs,
    "rule_target": aws.cloudwatch.EventTargetArgs,
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


# S3 refuses bucket names starting with these; a created bucket's name starts with the
# pipeline's name (components.aws.storage.bucket_prefix).
RESERVED_BUCKET_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
# DynamoDB table names: 3-255 of letters, digits, '_', '-', '.'
DYNAMO_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")


# the oldest Python headwater's runtime supports (pyproject's requires-python)
MIN_PYTHON = (3, 11)


def lambda_pythons() -> list[str]:
    """Python versions of the provider's Lambda runtime enum that headwater can run on."""
    out = []
    for runtime in aws.lambda_.Runtime:
        if runtime.value.startswith("python3."):
            version = runtime.value.removeprefix("python")
            if tuple(int(p) for p in version.split(".")) >= MIN_PYTHON:
                out.append(version)
    return sorted(out, key=lambda v: tuple(int(p) for p in v.split(".")))


def function_name(project: str, stack: str, pipeline: str) -> str:
    """The Lambda name (fixed, so the log group ``/aws/lambda/<name>`` exists first):
    ``<project>-<stack>-<pipeline>``. When characters Lambda refuses had to be replaced
    (a stack ``prod.eu``) or the name is too long, a hash of the exact triple keeps two
    projects or stacks apart (``prod.eu`` and ``prod-eu`` never collide)."""
    exact = f"{project}-{stack}-{pipeline}"
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", exact)
    if name != exact or len(name) > 64:
        name = name[:55] + "-" + hashlib.sha256(exact.encode()).hexdigest()[:8]
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


class AwsRules:
    """AWS's part of the plan-time checks (:mod:`components.checks` runs the rest)."""

    cloud = "aws"
    fixed_schema = ("Firehose converts records to Parquet through a Glue table whose schema "
                    "comes from sink.columns")

    def locations(self, spec: PipelineSpec) -> tuple[Location, list[Location]]:
        return locations(spec)

    def check_pipeline(self, spec: PipelineSpec, stack: StackConfig | None = None) -> None:
        where = f"pipeline {spec.name!r}"
        validate_overrides(where, spec.overrides.get("aws", {}), CHILDREN)
        for reserved in RESERVED_BUCKET_PREFIXES:
            if spec.name.startswith(reserved) and not (spec.source.bucket and spec.sink.existing):
                raise PlanError(
                    f"{where}: the name starts with {reserved!r}, and the buckets headwater "
                    "creates for it are named after the pipeline; S3 refuses bucket names "
                    f"starting with {', '.join(RESERVED_BUCKET_PREFIXES)}. Rename the pipeline.")
        for table in spec.lookup_keys():
            if not DYNAMO_NAME.match(table):
                raise PlanError(
                    f"{where}: lookup table {table!r} cannot name a DynamoDB table (letters, "
                    "digits, '_', '-' and '.' only). Rename the table in the step's "
                    "with: {table: ...}.")
        for what, text in (("source.prefix", spec.source.prefix),
                           ("deadletter.prefix", spec.deadletter.prefix)):
            if "*" in text or "?" in text:
                raise PlanError(
                    f"{where}: {what} {text!r} contains '*' or '?', which IAM policies read "
                    "as wildcards, so the function's read (or write) permission could not be "
                    "limited to that prefix. Use a prefix without them.")
        timeout, visibility = queue_timeouts(spec)
        vis = _override(spec, "queue", "visibility_timeout_seconds")
        if isinstance(vis, int) and vis < VISIBILITY_FACTOR * timeout:
            raise PlanError(
                f"{where}: overrides.queue.visibility_timeout_seconds={vis} is below "
                f"{VISIBILITY_FACTOR} x the function timeout ({timeout}s) = {visibility}; a "
                "message would reappear while still being processed. Raise it or lower the "
                "timeout.")
        if spec.limits.batch_size > 10 and spec.limits.batching_window_s < 1:
            raise PlanError(
                f"{where}: limits.batch_size={spec.limits.batch_size} needs "
                "limits.batching_window_s >= 1 (SQS event sources take more than 10 messages "
                "only with a batching window).")
        if stack is not None and stack.python not in lambda_pythons():
            raise PlanError(
                f"headwater:python {stack.python!r} is not a Lambda Python runtime headwater "
                f"runs on; supported: {', '.join(lambda_pythons())}.")
        kms_key = stack.kms_key if stack is not None else None
        if kms_key is not None and not kms_key.startswith("arn:"):
            raise PlanError(
                f"headwater:kms_key must be a KMS key ARN (IAM policies name keys by ARN), "
                f"not {kms_key!r}.")


RULES = AwsRules()


def check_pipeline(spec: PipelineSpec, kms_key: str | None = None) -> None:
    """Refuse, with what to change, a pipeline spec the AWS component cannot deploy (a
    component built directly, outside :func:`check_stack`, gets the same checks)."""
    stack = StackConfig.model_construct(cloud="aws", pipelines=[spec], kms_key=kms_key)
    check_stack(stack)


def check_names(stack: StackConfig, project: str, stack_name: str) -> None:
    """Physical names that two pipelines of the stack would share."""
    from .storage import glue_name

    seen: dict[str, str] = {}
    for spec in stack.pipelines:
        database = glue_name(project, stack_name, spec.name)
        if database in seen:
            raise PlanError(
                f"pipelines {seen[database]!r} and {spec.name!r} would share the Glue database "
                f"{database!r} (Glue names are lower case with '_' for '-'). Rename one.")
        seen[database] = spec.name


def check_stack(stack: StackConfig) -> None:
    """Every pipeline's checks, then sources that overlap, rings of pipelines, and
    physical names that collide."""
    import pulumi

    neutral_check_stack(stack, RULES)
    check_names(stack, pulumi.get_project(), pulumi.get_stack())
