"""``headwater:aws:Pipeline``: one pipeline spec as S3 -> SQS -> Lambda -> Firehose/Glue.

Every child has ``parent=self``, so options given to the component (providers, protect,
transforms, aliases) reach all of them. Children are attributes (``pipeline.queue``,
``pipeline.function`` ...) for programs that attach more; ``overrides.aws.<child>`` in the
spec is merged into that child's arguments (see :data:`CHILDREN`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from headwater.spec import Alerts, PipelineSpec

from ..common import merge_args
from . import observe, policy, storage
from .checks import check_pipeline, function_name, lookup_keys, queue_timeouts
from .code import ArtifactStore, Code

__all__ = ["Pipeline", "PipelineArgs", "event_pattern"]

HANDLER = "runtimes.aws.handler.handler"
LOG_RETENTION_DAYS = 30
DLQ_RETENTION_S = 14 * 24 * 3600  # the SQS maximum: time to notice and redrive
QUEUE_RETENTION_S = 4 * 24 * 3600
IDEMPOTENCY_KEY = "pk"  # "<bucket>/<key>#<etag>", written by the handler with a condition
IDEMPOTENCY_TTL = "expires_at"
EVENTS = ["s3:ObjectCreated:*"]  # an S3 event type, not an IAM action


def _wildcard(text: str) -> str:
    return text.replace("\\", "\\\\").replace("*", "\\*")


def event_pattern(bucket: str, prefix: str, suffix: str = "") -> dict[str, Any]:
    """The EventBridge pattern of S3 ``Object Created`` events for keys under ``prefix``
    (ending with ``suffix``), in ``bucket``."""
    key: dict[str, str] = ({"wildcard": f"{_wildcard(prefix)}*{_wildcard(suffix)}"}
                           if suffix else {"prefix": prefix})
    return {"source": ["aws.s3"], "detail-type": ["Object Created"],
            "detail": {"bucket": {"name": [bucket]}, "object": {"key": [key]}}}


@dataclass
class PipelineArgs:
    """Arguments of :class:`Pipeline`.

    ``artifact`` is the function's zip file, uploaded to ``artifacts`` (the stack's
    :class:`ArtifactStore`; a pipeline made on its own gets one of its own) as the object
    its function's code comes from; ``layers`` are layer version ARNs put first in the
    function's layers (the stack's shared layer). ``notify=False`` leaves the S3 notification to the caller (pipelines sharing an existing
    bucket must share one notification, see :func:`components.aws.deploy_stack`), which then
    reads :attr:`Pipeline.notification_queue`.
    """

    spec: PipelineSpec
    artifact: str | os.PathLike[str]
    python: str = "3.12"
    arch: str = "arm64"
    kms_key: str | None = None
    alarm_topic_arn: pulumi.Input[str] | None = None
    alarm_actions: list[pulumi.Input[str]] = field(default_factory=list)
    alerts: Alerts = field(default_factory=Alerts)
    tracing: bool = True  # Lambda active tracing (X-Ray)
    glue_database: str | None = None
    notify: bool = True
    artifacts: ArtifactStore | None = None
    layers: list[pulumi.Input[str]] = field(default_factory=list)


class Pipeline(pulumi.ComponentResource):
    """One headwater pipeline on AWS: S3 -> SQS (+ DLQ) -> Lambda -> Firehose -> S3 Parquet
    with a Glue table, DynamoDB lookup and idempotency tables, one role, alarms.

    The constructor reads as its parts, each a method: :meth:`_raw_bucket`,
    :meth:`_queue`, :meth:`_tables`, :meth:`_sink`, :meth:`_role`, :meth:`_function`,
    :func:`.observe.alarms`. Bucket and Firehose/Glue helpers are in ``components/aws/storage.py``,
    IAM documents in ``components/aws/policy.py``, AWS's plan-time rules in
    ``components/aws/checks.py``; the README's AWS section lists what gets created.
    """

    def __init__(self, name: str, args: PipelineArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("headwater:aws:Pipeline", name, None, opts)
        spec = args.spec
        check_pipeline(spec, args.kms_key)
        self.spec = spec
        self._name = name
        self._args = args
        self._overrides: dict[str, dict[str, Any]] = dict(spec.overrides.get("aws", {}))
        invoke = pulumi.InvokeOutputOptions(parent=self)
        self._ids = {"partition": aws.get_partition_output(opts=invoke).partition,
                     "region": aws.get_region_output(opts=invoke).region,
                     "account": aws.get_caller_identity_output(opts=invoke).account_id}

        self._raw_bucket()
        self._queue()
        self._tables()
        self._sink()
        self._role()
        self._function()
        actions = [*([args.alarm_topic_arn] if args.alarm_topic_arn is not None else []),
                   *args.alarm_actions]
        self.alarms = observe.alarms(self, actions, args.alerts)
        self.athena_query = pulumi.Output.all(self.glue_database.name, self.glue_table.name).apply(
            lambda p: f'SELECT * FROM "{p[0]}"."{p[1]}"'
            + (" WHERE dt = cast(current_date AS varchar)" if spec.sink.partition != "none" else "")
            + " LIMIT 10")
        self.register_outputs({
            "bucket_name": self.bucket.bucket, "queue_url": self.queue.url,
            "dlq_url": self.dlq.url, "function_name": self.function.name,
            "stream_name": self.stream.name, "curated_bucket_name": self.curated_bucket.bucket,
            "athena_query": self.athena_query,
        })

    def _raw_bucket(self) -> None:
        """Raw objects: the replay source, kept ``retention_days`` (or an existing bucket)."""
        spec, name, src = self.spec, self._name, self.spec.source
        if src.bucket:
            self.bucket = aws.s3.Bucket.get(f"{name}-raw", src.bucket,
                                            opts=pulumi.ResourceOptions(parent=self))
        else:
            self.bucket = storage.secure_bucket(
                self._make, "bucket", f"{name}-raw", prefix=storage.bucket_prefix(name, "raw"),
                kms_key=self._args.kms_key, expire=(src.prefix, spec.retention_days))

    def _queue(self) -> None:
        """The notification queue, with a DLQ so a poison notification is parked, never
        lost, and the path from the bucket into it: the bucket's notification
        configuration (``source.notifications: s3``) or an EventBridge rule
        (``eventbridge``, the default for an existing bucket: its notification
        configuration, which other systems may use, is left alone)."""
        spec, name, src = self.spec, self._name, self.spec.source
        _, visibility = queue_timeouts(spec)
        self.dlq = self._make("dlq", aws.sqs.Queue, f"{name}-dlq", {
            "message_retention_seconds": DLQ_RETENTION_S, "sqs_managed_sse_enabled": True})
        self.queue = self._make("queue", aws.sqs.Queue, f"{name}-queue", {
            "visibility_timeout_seconds": visibility,
            "message_retention_seconds": QUEUE_RETENTION_S,
            "receive_wait_time_seconds": 20,
            "sqs_managed_sse_enabled": True,
            "redrive_policy": self.dlq.arn.apply(lambda arn: json.dumps(
                {"deadLetterTargetArn": arn, "maxReceiveCount": spec.limits.max_receive_count})),
        })
        self.notification: aws.s3.BucketNotification | None = None
        self.notification_queue: dict[str, Any] | None = None
        self.rule: aws.cloudwatch.EventRule | None = None
        if src.notify_by == "eventbridge":
            self._eventbridge()
            return
        self.queue_policy = self._make(None, aws.sqs.QueuePolicy, f"{name}-queue-policy", {
            "queue_url": self.queue.url,
            "policy": policy.document([{
                **policy.statement(["sqs:SendMessage"], [self.queue.arn], sid="FromRawBucket",
                                   condition={"ArnEquals": {"aws:SourceArn": self.bucket.arn},
                                              "StringEquals": {
                                                  "aws:SourceAccount": self._ids["account"]}}),
                "Principal": {"Service": "s3.amazonaws.com"}}]),
        })
        self.notification_queue = {
            "id": spec.name, "queue_arn": self.queue.arn, "events": EVENTS,
            "filter_prefix": src.prefix, **({"filter_suffix": src.suffix} if src.suffix else {})}
        if self._args.notify:
            self.notification = self._make(
                "notification", aws.s3.BucketNotification, f"{name}-notification",
                {"bucket": self.bucket.bucket, "queues": [self.notification_queue]},
                depends_on=[self.queue_policy])

    def _eventbridge(self) -> None:
        """S3 -> EventBridge -> SQS: a rule on ``Object Created`` under the source prefix
        (and suffix), the queue as its target with the DLQ for what EventBridge cannot
        deliver. For a bucket headwater creates, EventBridge delivery is switched on here;
        an existing bucket needs it on already (README, "Existing buckets")."""
        spec, name, src = self.spec, self._name, self.spec.source
        if not src.bucket:
            self.notification = self._make(
                "notification", aws.s3.BucketNotification, f"{name}-notification",
                {"bucket": self.bucket.bucket, "eventbridge": True})
        self.rule = self._make("rule", aws.cloudwatch.EventRule, f"{name}-objects", {
            "description": f"headwater pipeline {spec.name}: new objects under {src.prefix}",
            "event_pattern": self.bucket.bucket.apply(
                lambda bucket: json.dumps(event_pattern(bucket, src.prefix, src.suffix))),
        })
        from_rule = {"ArnEquals": {"aws:SourceArn": self.rule.arn}}
        self.queue_policy = self._make(None, aws.sqs.QueuePolicy, f"{name}-queue-policy", {
            "queue_url": self.queue.url,
            "policy": policy.document([{
                **policy.statement(["sqs:SendMessage"], [self.queue.arn], sid="FromRule",
                                   condition=from_rule),
                "Principal": {"Service": "events.amazonaws.com"}}]),
        })
        self.dlq_policy = self._make(None, aws.sqs.QueuePolicy, f"{name}-dlq-policy", {
            "queue_url": self.dlq.url,
            "policy": policy.document([{
                **policy.statement(["sqs:SendMessage"], [self.dlq.arn], sid="UndeliveredEvents",
                                   condition=from_rule),
                "Principal": {"Service": "events.amazonaws.com"}}]),
        })
        self.rule_target = self._make("rule_target", aws.cloudwatch.EventTarget,
                                      f"{name}-objects-target", {
            "rule": self.rule.name, "arn": self.queue.arn,
            "dead_letter_config": {"arn": self.dlq.arn},
            "retry_policy": {"maximum_event_age_in_seconds": 24 * 3600,
                             "maximum_retry_attempts": 185},
        }, depends_on=[self.queue_policy, self.dlq_policy])

    def _tables(self) -> None:
        """Enrichment tables (created, or existing ones named by ``lookups``) and the
        idempotency record of processed objects."""
        spec, name, kms = self.spec, self._name, self._args.kms_key
        table_sse: dict[str, Any] = {"enabled": True, **({"kms_key_arn": kms} if kms else {})}
        self.lookup_tables: dict[str, aws.dynamodb.Table] = {}
        for table, key in lookup_keys(spec).items():
            if table in spec.lookups:
                self.lookup_tables[table] = aws.dynamodb.Table.get(
                    f"{name}-lookup-{table}", spec.lookups[table],
                    opts=pulumi.ResourceOptions(parent=self))
                continue
            self.lookup_tables[table] = self._make(
                "lookup_table", aws.dynamodb.Table, f"{name}-lookup-{table}", {
                    "billing_mode": "PAY_PER_REQUEST", "hash_key": key,
                    "attributes": [{"name": key, "type": "S"}],
                    "server_side_encryption": table_sse,
                    "point_in_time_recovery": {"enabled": True}})
        self.idempotency_table = self._make(
            "idempotency_table", aws.dynamodb.Table, f"{name}-idempotency", {
                "billing_mode": "PAY_PER_REQUEST", "hash_key": IDEMPOTENCY_KEY,
                "attributes": [{"name": IDEMPOTENCY_KEY, "type": "S"}],
                "ttl": {"attribute_name": IDEMPOTENCY_TTL, "enabled": True},
                "server_side_encryption": table_sse})

    def _sink(self) -> None:
        """Curated bucket, Glue table and Firehose stream (JSON -> Parquet, by day), and
        where dead-letter objects go (``deadletter.bucket``, else the curated bucket)."""
        spec, name, kms = self.spec, self._name, self._args.kms_key
        if spec.sink.existing:
            self.curated_bucket = aws.s3.Bucket.get(f"{name}-curated", spec.sink.existing,
                                                    opts=pulumi.ResourceOptions(parent=self))
        else:
            self.curated_bucket = storage.secure_bucket(
                self._make, "curated_bucket", f"{name}-curated",
                prefix=storage.bucket_prefix(name, "curated"), kms_key=kms)
        database = self._args.glue_database or storage.glue_name(
            pulumi.get_project(), pulumi.get_stack(), spec.name)
        sink = storage.sink(self._make, name, table=spec.sink.table,
                            partition=spec.sink.partition, columns=spec.sink.columns,
                            database=database, bucket_name=self.curated_bucket.bucket,
                            bucket_arn=self.curated_bucket.arn, arns=self._ids, kms_key=kms)
        self.stream, self.firehose_role = sink.stream, sink.role
        self.glue_database, self.glue_table = sink.database, sink.table
        self.dedup_view = sink.view
        if spec.deadletter.bucket:
            self._dl_name: pulumi.Input[str] = spec.deadletter.bucket
            self._dl_arn = pulumi.Output.concat("arn:", self._ids["partition"], ":s3:::",
                                                spec.deadletter.bucket)
        else:
            self._dl_name, self._dl_arn = self.curated_bucket.bucket, self.curated_bucket.arn

    def _role(self) -> None:
        """The function's log group and its role: exactly the actions on exactly the
        resources it uses."""
        spec, name, kms = self.spec, self._name, self._args.kms_key
        part, region, account = (self._ids[k] for k in ("partition", "region", "account"))
        self._fn_name = function_name(pulumi.get_project(), pulumi.get_stack(), spec.name)
        self.log_group = self._make("log_group", aws.cloudwatch.LogGroup, f"{name}-logs", {
            "name": f"/aws/lambda/{self._fn_name}", "retention_in_days": LOG_RETENTION_DAYS})
        self.role = self._make("role", aws.iam.Role, f"{name}-role", {
            "assume_role_policy": policy.assume_role("lambda.amazonaws.com", account),
            "description": f"headwater pipeline {spec.name} (function)"})
        secret_arns = {
            logical: ref if ref.startswith("arn:") else pulumi.Output.concat(
                "arn:", part, ":secretsmanager:", region, ":", account, ":secret:", ref,
                "-??????")  # Secrets Manager appends six random characters to a name's ARN
            for logical, ref in spec.secrets.items()}
        statements = [
            policy.statement(["s3:GetObject"],
                             [pulumi.Output.concat(self.bucket.arn, "/", spec.source.prefix, "*")],
                             sid="ReadRawPrefix"),
            policy.statement(["sqs:ChangeMessageVisibility", "sqs:DeleteMessage",
                              "sqs:GetQueueAttributes", "sqs:ReceiveMessage"],
                             [self.queue.arn], sid="ConsumeQueue"),
            policy.statement(["firehose:PutRecordBatch"], [self.stream.arn], sid="WriteSink"),
            policy.statement(["dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem",
                              "dynamodb:UpdateItem"], [self.idempotency_table.arn],
                             sid="Idempotency"),
            policy.statement(["s3:PutObject"], [pulumi.Output.concat(
                self._dl_arn, "/", spec.deadletter.prefix, spec.name, "/*")],
                sid="WriteDeadLetter"),
            # Lambda names its log streams at run time, so the streams of this one log group
            # are named by the child wildcard (see policy.py's rule); the group is exact.
            policy.statement(["logs:CreateLogStream", "logs:PutLogEvents"],
                             [self.log_group.arn,
                              pulumi.Output.concat(self.log_group.arn, ":log-stream:*")],
                             sid="OwnLogGroup"),
        ]
        if self._args.tracing:
            # X-Ray has no resource-level permissions for writing segments (AWS's Service
            # Authorization Reference): the policy rule allows "*" for these two only
            statements.append(policy.statement(list(observe.XRAY_ACTIONS), ["*"],
                                               sid="WriteTraces"))
        if self.lookup_tables:
            statements.append(policy.statement(
                ["dynamodb:BatchGetItem"], [t.arn for t in self.lookup_tables.values()],
                sid="LookupTables"))
        if secret_arns:
            statements.append(policy.statement(["secretsmanager:GetSecretValue"],
                                               list(secret_arns.values()), sid="Secrets"))
        if kms:
            statements.append(policy.statement(["kms:Decrypt", "kms:GenerateDataKey"], [kms],
                                               sid="BucketKey"))
        self.role_policy = self._make(None, aws.iam.RolePolicy, f"{name}-role-policy",
                                      {"role": self.role.id, "policy": policy.document(statements)})

    def environment(self) -> dict[str, pulumi.Input[str]]:
        """The function's environment: resource names and secret *references*, never
        secret values."""
        spec, kms = self.spec, self._args.kms_key
        tables = {t: tb.name for t, tb in self.lookup_tables.items()}
        return {
            "HEADWATER_PIPELINE": spec.name,
            "HEADWATER_STREAM": self.stream.name,
            "HEADWATER_DEADLETTER_BUCKET": self._dl_name,
            "HEADWATER_DEADLETTER_PREFIX": spec.deadletter.prefix,
            "HEADWATER_IDEMPOTENCY_TABLE": self.idempotency_table.name,
            # Output.all() of no outputs is a list: an empty mapping is written as such
            "HEADWATER_LOOKUP_TABLES": pulumi.Output.all(**tables).apply(
                lambda names: json.dumps(dict(names), sort_keys=True)) if tables else "{}",
            "HEADWATER_LOOKUP_KEYS": json.dumps(lookup_keys(spec), sort_keys=True),
            "HEADWATER_SECRETS": json.dumps(dict(spec.secrets), sort_keys=True),
            "HEADWATER_MIN_REMAINING_MS": "10000",
            # the metrics' dimensions (runtimes/core/metrics.py)
            "HEADWATER_PULUMI_PROJECT": pulumi.get_project(),
            "HEADWATER_STACK": pulumi.get_stack(),
            "HEADWATER_TRACING": "1" if self._args.tracing else "0",
            **({"HEADWATER_DEADLETTER_KMS_KEY": kms} if kms else {}),
        }

    def _function(self) -> None:
        """The function, its code from the artifact's S3 object (see ``code.py``), and
        its SQS trigger. Back-pressure: the queue absorbs bursts; at most
        ``max_concurrency`` invocations reach the warehouse. Failed records are reported
        per message, not per batch."""
        spec, name, args = self.spec, self._name, self._args
        fn_timeout, _ = queue_timeouts(spec)
        self.artifacts = args.artifacts or ArtifactStore(
            f"{name}-artifacts", self._args.kms_key, owner=name,
            opts=pulumi.ResourceOptions(parent=self))
        self.code: Code = self.artifacts.upload(f"{name}-code", args.artifact, parent=self)
        # a user's `overrides.aws.function.layers` come after the shared layer, not instead
        fn_overrides = dict(self._overrides.get("function", {}))
        layers = [*args.layers, *fn_overrides.pop("layers", [])]
        self._overrides["function"] = fn_overrides
        # exported as the stack output `function_settings`: `headwater replay` runs with it
        self.function_settings = self.environment()
        self.function = self._make("function", aws.lambda_.Function, f"{name}-function", {
            "name": self._fn_name, "role": self.role.arn, "handler": HANDLER,
            "runtime": f"python{args.python}", "architectures": [args.arch],
            "memory_size": spec.limits.memory_mb, "timeout": fn_timeout,
            **self.code.function_args(), **({"layers": layers} if layers else {}),
            "environment": {"variables": self.function_settings},
            "logging_config": {"log_format": "JSON", "log_group": self.log_group.name},
            "tracing_config": {"mode": "Active" if args.tracing else "PassThrough"},
        }, depends_on=[self.role_policy, self.log_group])
        self.event_source_mapping = self._make(
            "event_source_mapping", aws.lambda_.EventSourceMapping, f"{name}-trigger", {
                "event_source_arn": self.queue.arn, "function_name": self.function.arn,
                "batch_size": spec.limits.batch_size,
                "maximum_batching_window_in_seconds": spec.limits.batching_window_s,
                "function_response_types": ["ReportBatchItemFailures"],
                "scaling_config": {"maximum_concurrency": spec.limits.max_concurrency}},
            depends_on=[self.role_policy])

    def _make(self, key: str | None, cls: type, name: str, args: dict[str, Any],
              **opts: Any) -> Any:
        """Create a child with ``parent=self`` and ``overrides.aws.<key>`` merged in."""
        merged = merge_args(args, self._overrides.get(key) if key else None)
        return cls(name, opts=pulumi.ResourceOptions(parent=self, **opts), **merged)
