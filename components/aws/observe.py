"""AWS observability: a pipeline's alarms, the stack's CloudWatch dashboard, where alarms
go (the alert target), and X-Ray for the function.

Every metric named here is either the runtime's own (namespace ``headwater``, dimensions
project / stack / pipeline, :mod:`runtimes.core.metrics`) or one AWS documents for the
service (:data:`SERVICE_METRICS`); ``tests/unit/test_observe.py`` checks both against
its own table of AWS's documentation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pulumi
import pulumi_aws as aws

from headwater.spec import Alerts, StackConfig

from ..common import PlanError
from ..observe import ALARMS, WIDGETS, dashboard_name

if TYPE_CHECKING:
    from .pipeline import Pipeline

__all__ = ["NAMESPACE", "SERVICE_METRICS", "XRAY_ACTIONS", "AlertTarget", "Dashboard",
           "alarms", "dashboard_body", "dims"]

NAMESPACE = "headwater"  # runtimes/aws/metrics.py writes here
PERIOD = 300
# AWS's own metrics the dashboard and alarms use (names as AWS documents them)
SERVICE_METRICS = {
    "AWS/Lambda": ("Errors", "Throttles", "Duration"),
    "AWS/SQS": ("ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"),
    "AWS/Firehose": ("DeliveryToS3.Success", "DeliveryToS3.DataFreshness"),
}
# Lambda active tracing writes with these; X-Ray has no resource-level permissions for them
# (Service Authorization Reference), so they alone may name Resource "*" (see policy rule)
XRAY_ACTIONS = ("xray:PutTelemetryRecords", "xray:PutTraceSegments")
_SNS_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$")


def dims(project: str, stack: str, pipeline: str) -> dict[str, str]:
    """The runtime metrics' dimensions, as the EMF line writes them."""
    return {"project": project, "stack": stack, "pipeline": pipeline}


class AlertTarget:
    """Where the stack's alarms go: one SNS topic (e-mail and https subscriptions), and/or
    an existing SNS topic (``alerts.target``). :attr:`actions` is the alarm actions list.
    (Plain resources, not a component: the topic keeps the name and URN it always had.)"""

    def __init__(self, name: str, stack: StackConfig,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        alerts: Alerts = stack.alerts
        if alerts.target and not _SNS_ARN.match(alerts.target):
            raise PlanError(f"headwater:alerts.target: {alerts.target!r} is not an SNS topic "
                            "ARN (arn:aws:sns:<region>:<account>:<topic>)")
        self.actions: list[pulumi.Input[str]] = []
        self.topic: aws.sns.Topic | None = None
        if stack.alert_emails or alerts.webhook:
            # Encrypted only with a customer key: CloudWatch cannot publish to a topic under
            # the AWS-managed SNS key, whose policy cannot grant it.
            self.topic = aws.sns.Topic(name, kms_master_key_id=stack.kms_key, opts=opts)
            child = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=self.topic))
            for n, email in enumerate(stack.alert_emails):
                aws.sns.TopicSubscription(f"{name}-email" + (f"-{n}" if n else ""),
                                          topic=self.topic.arn, protocol="email",
                                          endpoint=email, opts=child)
            if alerts.webhook:
                aws.sns.TopicSubscription(f"{name}-webhook", topic=self.topic.arn,
                                          protocol="https", endpoint=alerts.webhook,
                                          opts=child)
            self.actions.append(self.topic.arn)
        if alerts.target:
            self.actions.append(alerts.target)


def alarms(p: Pipeline, actions: Sequence[pulumi.Input[str]], alerts: Alerts
           ) -> dict[str, aws.cloudwatch.MetricAlarm]:
    """The rules of :data:`components.observe.ALARMS` (and throttles) for one pipeline."""
    fn = {"FunctionName": p.function.name}
    runtime = dims(pulumi.get_project(), pulumi.get_stack(), p.spec.name)
    why = {r.key: f"{r.what}: {r.why}" for r in ALARMS}
    simple = {
        "errors": ("AWS/Lambda", "Errors", "Sum", fn, 0, why["errors"]),
        "throttles": ("AWS/Lambda", "Throttles", "Sum", fn, 0,
                      "the function was throttled (account concurrency?)"),
        "dlq-visible": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum",
                        {"QueueName": p.dlq.name}, 0, why["dlq"]),
        "oldest-message": ("AWS/SQS", "ApproximateAgeOfOldestMessage", "Maximum",
                           {"QueueName": p.queue.name}, alerts.oldest_message_minutes * 60,
                           why["oldest-message"]),
    }
    common = {"evaluation_periods": 1, "comparison_operator": "GreaterThanThreshold",
              "treat_missing_data": "notBreaching", "alarm_actions": list(actions),
              "ok_actions": list(actions)}
    out = {}
    for key, (ns, metric, stat, dimensions, threshold, text) in simple.items():
        out[key] = p._make("alarm", aws.cloudwatch.MetricAlarm, f"{p._name}-{key}", {
            "namespace": ns, "metric_name": metric, "statistic": stat,
            "dimensions": dimensions, "period": PERIOD, "threshold": threshold,
            "alarm_description": f"headwater {p.spec.name}: {text}", **common})

    def runtime_metric(id_: str, name: str) -> dict[str, Any]:
        return {"id": id_, "return_data": False, "metric": {
            "namespace": NAMESPACE, "metric_name": name, "dimensions": runtime,
            "period": PERIOD, "stat": "Sum"}}

    out["deadletter-rate"] = p._make(
        "alarm", aws.cloudwatch.MetricAlarm, f"{p._name}-deadletter-rate", {
            "metric_queries": [
                {"id": "rate", "expression": "IF(received > 0, dead / received, 0)",
                 "label": "dead-lettered / records in", "return_data": True},
                runtime_metric("dead", "DeadLettered"), runtime_metric("received", "Received")],
            "threshold": alerts.deadletter_rate,
            "alarm_description": f"headwater {p.spec.name}: {why['deadletter-rate']} "
                                 f"({alerts.deadletter_rate:g})", **common})
    return out


def _metric(ns: str, name: str, dimensions: dict[str, Any], **opts: Any) -> list[Any]:
    row: list[Any] = [ns, name]
    for k, v in dimensions.items():
        row += [k, v]
    return row + ([opts] if opts else [])


def _widget(title: str, metrics: list[list[Any]], region: str, x: int, y: int,
            **props: Any) -> dict[str, Any]:
    return {"type": "metric", "x": x, "y": y, "width": 8, "height": 6, "properties": {
        "title": title, "metrics": metrics, "region": region, "view": "timeSeries",
        "period": PERIOD, "stat": "Sum", **props}}


def dashboard_body(project: str, stack: str, region: str,
                   pipelines: Sequence[dict[str, str]]) -> dict[str, Any]:
    """The dashboard: per pipeline (``name``, ``function``, ``queue``, ``dlq``, ``stream``),
    a title row and one widget per entry of :data:`components.observe.WIDGETS`."""
    widgets: list[dict[str, Any]] = []
    y = 0
    for p in pipelines:
        run = dims(project, stack, p["name"])
        fn, queue = {"FunctionName": p["function"]}, {"QueueName": p["queue"]}
        widgets.append({"type": "text", "x": 0, "y": y, "width": 24, "height": 1,
                        "properties": {"markdown": f"## pipeline {p['name']}"}})
        y += 1
        cells = [
            [_metric(NAMESPACE, "Received", run, label="records in"),
             _metric(NAMESPACE, "Written", run, label="written"),
             _metric(NAMESPACE, "DeadLettered", run, label="dead-lettered")],
            [[{"expression": "IF(r > 0, 100 * w / r, 100)", "label": "written / records in %",
               "id": "rate"}],
             _metric(NAMESPACE, "Written", run, id="w", visible=False),
             _metric(NAMESPACE, "Received", run, id="r", visible=False)],
            [_metric("AWS/SQS", "ApproximateNumberOfMessagesVisible", queue, stat="Maximum",
                     label="queue depth"),
             _metric("AWS/SQS", "ApproximateAgeOfOldestMessage", queue, stat="Maximum",
                     label="oldest message (s)", yAxis="right")],
            [_metric("AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": p["dlq"]},
                     stat="Maximum", label="DLQ depth")],
            [_metric("AWS/Lambda", "Errors", fn, label="errors"),
             _metric("AWS/Lambda", "Throttles", fn, label="throttles"),
             _metric("AWS/Lambda", "Duration", fn, stat="p95", label="duration p95 (ms)",
                     yAxis="right")],
            [_metric("AWS/Firehose", "DeliveryToS3.Success", {"DeliveryStreamName": p["stream"]},
                     stat="Average", label="delivery to S3 success"),
             _metric("AWS/Firehose", "DeliveryToS3.DataFreshness",
                     {"DeliveryStreamName": p["stream"]}, stat="Maximum",
                     label="data freshness (s)", yAxis="right")],
            [_metric(NAMESPACE, "SinkSeconds", run, stat="Maximum", label="sink seconds"),
             _metric(NAMESPACE, "ObjectAgeSeconds", run, stat="Maximum",
                     label="object age at start (s)", yAxis="right")],
        ]
        for n, (title, metrics) in enumerate(zip(WIDGETS, cells, strict=True)):
            widgets.append(_widget(title, metrics, region, x=(n % 3) * 8, y=y + (n // 3) * 6))
        y += 6 * ((len(cells) + 2) // 3)
    return {"start": "-PT3H", "periodOverride": "inherit", "widgets": widgets}


class Dashboard(pulumi.ComponentResource):
    """The stack's CloudWatch dashboard (``headwater-<project>-<stack>``)."""

    def __init__(self, name: str, pipelines: Sequence[Pipeline],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("headwater:aws:Dashboard", name, None, opts)
        project, stack = pulumi.get_project(), pulumi.get_stack()
        region = pipelines[0]._ids["region"]
        parts = [pulumi.Output.all(name=p.spec.name, function=p.function.name,
                                   queue=p.queue.name, dlq=p.dlq.name, stream=p.stream.name)
                 for p in pipelines]
        body = pulumi.Output.all(region, *parts).apply(
            lambda v: json.dumps(dashboard_body(project, stack, v[0], v[1:]), sort_keys=True))
        self.name = dashboard_name(project, stack)
        self.dashboard = aws.cloudwatch.Dashboard(
            name, dashboard_name=self.name, dashboard_body=body,
            opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({"dashboard_name": self.dashboard.dashboard_name})
