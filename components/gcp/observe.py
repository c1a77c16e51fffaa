"""GCP observability for a stack: log-based metrics of the runtime's vocabulary, a Cloud
Monitoring dashboard, alert policies from the shared rules, and notification channels
(the alert target).

The function writes one ``headwater request`` log line per object (runtimes/gcp/metrics.py:
``jsonPayload.metrics.<Name>`` plus ``project``, ``stack``, ``pipeline``). Each
:data:`LOG_METRICS` entry is a distribution log-based metric extracting one value, with
the pipeline as a label; the dashboard and the dead-letter-rate alert read their sums with
PromQL (``<metric>_sum``). Pub/Sub and Cloud Run metrics are the services' own
(:data:`SERVICE_METRICS`, checked against Google's documentation in the tests).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pulumi
import pulumi_gcp as gcp

from headwater.spec import StackConfig

from ..common import PlanError
from ..observe import ALARMS, WIDGETS, dashboard_name

if TYPE_CHECKING:
    from .pipeline import Pipeline

__all__ = ["LOG_METRICS", "SERVICE_METRICS", "Observability", "dashboard_body", "promql"]

LOG_METRICS = ("Objects", "Received", "Written", "DeadLettered", "SinkSeconds",
               "ObjectAgeSeconds")
SERVICE_METRICS = (
    "run.googleapis.com/request_count", "run.googleapis.com/request_latencies",
    "pubsub.googleapis.com/subscription/num_undelivered_messages",
    "pubsub.googleapis.com/subscription/oldest_unacked_message_age",
    "bigquery.googleapis.com/storage/uploaded_row_count",
)
PERIOD = "300s"


def log_metric_name(stack: str, metric: str) -> str:
    return f"headwater/{stack}/{metric}"


def promql(stack: str, metric: str, pipeline: str, window: str = "5m") -> str:
    """The sum over ``window`` of one runtime metric of one pipeline (the distribution's
    ``_sum`` series, as Cloud Monitoring exposes a log-based metric to PromQL)."""
    series = "logging_googleapis_com:user_" + log_metric_name(stack, metric).replace("/", "_")
    return (f'sum(increase({series}_sum{{monitored_resource="cloud_run_revision",'
            f'pipeline="{pipeline}"}}[{window}]))')


def _filter(metric: str, **labels: str) -> str:
    parts = [f'metric.type="{metric}"'] + [f'{k}="{v}"' for k, v in labels.items()]
    return " AND ".join(parts)


def _chart(title: str, datasets: list[dict[str, Any]]) -> dict[str, Any]:
    return {"title": title, "xyChart": {"dataSets": datasets, "chartOptions": {"mode": "COLOR"}}}


def _prom(query: str, label: str) -> dict[str, Any]:
    return {"timeSeriesQuery": {"prometheusQuery": query}, "plotType": "LINE",
            "legendTemplate": label}


def _service(metric: str, label: str, aligner: str, **labels: str) -> dict[str, Any]:
    return {"timeSeriesQuery": {"timeSeriesFilter": {
        "filter": _filter(metric, **labels),
        "aggregation": {"alignmentPeriod": PERIOD, "perSeriesAligner": aligner}}},
        "plotType": "LINE", "legendTemplate": label}


def dashboard_body(project: str, stack: str, pipelines: Sequence[dict[str, str]]
                   ) -> dict[str, Any]:
    """Per pipeline (``name``, ``service``, ``subscription``, ``dead_letter_subscription``,
    ``dataset``): a section header and one tile per :data:`components.observe.WIDGETS`."""
    tiles: list[dict[str, Any]] = []
    y = 0
    for p in pipelines:
        name = p["name"]
        sub = {"resource.label.subscription_id": p["subscription"]}
        dl = {"resource.label.subscription_id": p["dead_letter_subscription"]}
        run = {"resource.label.service_name": p["service"]}
        charts = [
            [_prom(promql(stack, m, name), label) for m, label in
             (("Received", "records in"), ("Written", "written"),
              ("DeadLettered", "dead-lettered"))],
            [_prom(f"100 * {promql(stack, 'Written', name)} / "
                   f"{promql(stack, 'Received', name)}", "written / records in %")],
            [_service("pubsub.googleapis.com/subscription/num_undelivered_messages",
                      "queue depth", "ALIGN_MAX", **sub),
             _service("pubsub.googleapis.com/subscription/oldest_unacked_message_age",
                      "oldest message (s)", "ALIGN_MAX", **sub)],
            [_service("pubsub.googleapis.com/subscription/num_undelivered_messages",
                      "dead-letter depth", "ALIGN_MAX", **dl)],
            [_service("run.googleapis.com/request_count", "errors (5xx)", "ALIGN_DELTA",
                      **run, **{"metric.label.response_code_class": "5xx"}),
             _service("run.googleapis.com/request_count", "throttled (429)", "ALIGN_DELTA",
                      **run, **{"metric.label.response_code": "429"}),
             _service("run.googleapis.com/request_latencies", "duration p95 (ms)",
                      "ALIGN_PERCENTILE_95", **run)],
            [_service("bigquery.googleapis.com/storage/uploaded_row_count", "rows inserted",
                      "ALIGN_DELTA", **{"resource.label.dataset_id": p["dataset"]}),
             _prom(promql(stack, "DeadLettered", name), "dead-lettered (incl. insert errors)")],
            [_prom(promql(stack, "SinkSeconds", name), "sink seconds"),
             _prom(promql(stack, "ObjectAgeSeconds", name), "object age at start (s)")],
        ]
        tiles.append({"xPos": 0, "yPos": y, "width": 48, "height": 2,
                      "widget": {"title": f"pipeline {name}", "text": {
                          "content": f"## pipeline {name}", "format": "MARKDOWN"}}})
        y += 2
        for n, (title, datasets) in enumerate(zip(WIDGETS, charts, strict=True)):
            tiles.append({"xPos": (n % 3) * 16, "yPos": y + (n // 3) * 16, "width": 16,
                          "height": 16, "widget": _chart(title, datasets)})
        y += 16 * ((len(charts) + 2) // 3)
    return {"displayName": dashboard_name(project, stack),
            "mosaicLayout": {"columns": 48, "tiles": tiles}}


class Observability(pulumi.ComponentResource):
    """``headwater:gcp:Observability``: the stack's log-based metrics, dashboard,
    notification channels and, per pipeline, its alert policies."""

    def __init__(self, name: str, stack: StackConfig, pipelines: Sequence[Pipeline],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("headwater:gcp:Observability", name, None, opts)
        project, stack_name = pulumi.get_project(), pulumi.get_stack()
        child = pulumi.ResourceOptions(parent=self)
        alerts = stack.alerts
        if alerts.target and not alerts.target.startswith("projects/"):
            raise PlanError(f"headwater:alerts.target: {alerts.target!r} is not a Pub/Sub "
                            "topic id (projects/<project>/topics/<topic>)")
        self.log_metrics = {m: gcp.logging.Metric(
            f"{name}-{m}", name=log_metric_name(stack_name, m),
            description=f"headwater {m}: " + {"Objects": "objects processed",
                                              "Received": "records in"}.get(m, m),
            filter=(f'resource.type="cloud_run_revision" AND jsonPayload.message="headwater '
                    f'request" AND jsonPayload.stack="{stack_name}" AND '
                    f'jsonPayload.project="{project}" AND jsonPayload.metrics.{m}:*'),
            value_extractor=f"EXTRACT(jsonPayload.metrics.{m})",
            label_extractors={"pipeline": "EXTRACT(jsonPayload.pipeline)"},
            metric_descriptor={"metric_kind": "DELTA", "value_type": "DISTRIBUTION",
                               "unit": "s" if m.endswith("Seconds") else "1",
                               "labels": [{"key": "pipeline", "value_type": "STRING"}]},
            bucket_options={"exponential_buckets": {"num_finite_buckets": 32,
                                                    "growth_factor": 2, "scale": 1}},
            opts=child) for m in LOG_METRICS}
        self.channels: list[Any] = []
        for n, email in enumerate(stack.alert_emails):
            self.channels.append(gcp.monitoring.NotificationChannel(
                f"{name}-email-{n}", display_name=f"headwater {stack_name} alerts ({email})",
                type="email", labels={"email_address": email}, opts=child))
        if alerts.webhook:
            self.channels.append(gcp.monitoring.NotificationChannel(
                f"{name}-webhook", display_name=f"headwater {stack_name} alerts (webhook)",
                type="webhook_tokenauth", labels={"url": alerts.webhook}, opts=child))
        if alerts.target:
            self.channels.append(gcp.monitoring.NotificationChannel(
                f"{name}-pubsub", display_name=f"headwater {stack_name} alerts (Pub/Sub)",
                type="pubsub", labels={"topic": alerts.target}, opts=child))
        ids = [c.id for c in self.channels]
        metrics_ready = list(self.log_metrics.values())
        self.policies = {p.spec.name: self._policies(p, stack, ids, metrics_ready)
                         for p in pipelines}
        parts = [pulumi.Output.all(name=p.spec.name, service=p.function.name,
                                   subscription=p.subscription.name,
                                   dead_letter_subscription=p.dead_letter_subscription.name,
                                   dataset=p.dataset.dataset_id) for p in pipelines]
        body = pulumi.Output.all(*parts).apply(
            lambda v: json.dumps(dashboard_body(project, stack_name, v), sort_keys=True))
        self.dashboard = gcp.monitoring.Dashboard(
            f"{name}-dashboard", dashboard_json=body,
            opts=pulumi.ResourceOptions(parent=self, depends_on=metrics_ready))
        self.register_outputs({"dashboard": self.dashboard.id})

    def _policies(self, p: Pipeline, stack: StackConfig, channels: list[Any],
                  ready: list[Any]) -> dict[str, Any]:
        alerts, name = stack.alerts, p.spec.name
        why = {r.key: f"{r.what}: {r.why}" for r in ALARMS}

        def threshold(metric: str, labels: dict[str, Any], value: float, aligner: str
                      ) -> dict[str, Any]:
            return {"condition_threshold": {
                "filter": pulumi.Output.all(**labels).apply(
                    lambda lb: _filter(metric, **lb) + ' AND resource.type="'
                    + ("cloud_run_revision" if metric.startswith("run.") else
                       "pubsub_subscription") + '"'),
                "comparison": "COMPARISON_GT", "threshold_value": value, "duration": "0s",
                "aggregations": [{"alignment_period": PERIOD, "per_series_aligner": aligner}]}}

        rules = {
            "errors": threshold("run.googleapis.com/request_count",
                                {"resource.label.service_name": p.function.name,
                                 "metric.label.response_code_class": "5xx"}, 0, "ALIGN_DELTA"),
            "dlq": threshold("pubsub.googleapis.com/subscription/num_undelivered_messages",
                             {"resource.label.subscription_id":
                              p.dead_letter_subscription.name}, 0, "ALIGN_MAX"),
            "oldest-message": threshold(
                "pubsub.googleapis.com/subscription/oldest_unacked_message_age",
                {"resource.label.subscription_id": p.subscription.name},
                alerts.oldest_message_minutes * 60, "ALIGN_MAX"),
            "deadletter-rate": {"condition_prometheus_query_language": {
                "query": (f"{promql(pulumi.get_stack(), 'DeadLettered', name)} / "
                          f"{promql(pulumi.get_stack(), 'Received', name)} > "
                          f"{alerts.deadletter_rate:g}"),
                "duration": "0s", "evaluation_interval": "60s"}},
        }
        out = {}
        for key, condition in rules.items():
            out[key] = gcp.monitoring.AlertPolicy(
                f"{p._name}-{key}", display_name=f"headwater {pulumi.get_stack()} {name}: {key}",
                combiner="OR", conditions=[{"display_name": why[key], **condition}],
                notification_channels=channels,
                documentation={"content": f"headwater pipeline {name}: {why[key]}",
                               "mime_type": "text/markdown"},
                opts=pulumi.ResourceOptions(parent=self, depends_on=ready))
        return out
