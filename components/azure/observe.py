"""Azure observability for a stack: an Application Insights workbook (the dashboard), log
alert rules from the shared rules, and the Action Group they notify (the alert target).

The function writes one ``headwater metrics`` line per invocation (runtimes/azure/
metrics.py), which the Functions host sends to the pipeline's Application Insights as a
trace; KQL reads it with ``parse_json(message)``: ``m.metrics.<Name>`` (the shared
vocabulary), ``m.project``, ``m.stack``, ``m.pipeline``. Event Hubs and Event Grid
metrics are the services' own (checked against Microsoft's documentation in the tests).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pulumi
import pulumi_azure_native as az

from headwater.spec import StackConfig
from headwater.status.azure import base_query  # `headwater status` reads the same lines

from ..common import PlanError
from ..observe import ALARMS, WIDGETS, dashboard_name

if TYPE_CHECKING:
    from .pipeline import Pipeline

__all__ = ["Observability", "base_query", "workbook_body"]

_ACTION_GROUP = re.compile(r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/"
                           r"microsoft\.insights/actionGroups/[^/]+$", re.IGNORECASE)


def _sum(*names: str) -> str:
    return ", ".join(f"{n} = sum(todouble(m.metrics.{n}))" for n in names)


def _kql(title: str, query: str, insights: str) -> dict[str, Any]:
    return {"type": 3, "name": title, "content": {
        "version": "KqlItem/1.0", "title": title, "query": query, "queryType": 0,
        "resourceType": "microsoft.insights/components",
        "crossComponentResources": [insights], "visualization": "timechart",
        "timeContext": {"durationMs": 10800000}}}


def _metrics(title: str, resource: str, namespace: str, names: Sequence[str]
             ) -> dict[str, Any]:
    return {"type": 10, "name": title, "content": {
        "version": "MetricsItem/2.0", "title": title, "size": 0, "chartType": 2,
        "resourceType": namespace.lower(), "resourceIds": [resource],
        "timeContext": {"durationMs": 10800000},
        "metrics": [{"namespace": namespace.lower(), "metric": f"{namespace.lower()}--{n}",
                     "aggregation": 1} for n in names]}}


def workbook_body(project: str, stack: str, pipelines: Sequence[dict[str, str]]
                  ) -> dict[str, Any]:
    """Per pipeline (``name``, ``insights``, ``namespace``, ``topic``): a header and one
    item per :data:`components.observe.WIDGETS`."""
    items: list[dict[str, Any]] = []
    for p in pipelines:
        base = base_query(project, stack, p["name"])
        ins = p["insights"]
        bin_ = "by bin(timestamp, 5m) | render timechart"
        cells = [
            _kql(WIDGETS[0], f"{base} | summarize {_sum('Received', 'Written', 'DeadLettered')} "
                             f"{bin_}", ins),
            _kql(WIDGETS[1], f"{base} | summarize {_sum('Received', 'Written')} {bin_.split(' |')[0]}"
                             " | extend success_pct = iff(Received > 0, 100.0 * Written / "
                             "Received, 100.0) | project timestamp, success_pct "
                             "| render timechart", ins),
            _metrics(WIDGETS[2], p["namespace"], "Microsoft.EventHub/namespaces",
                     ["IncomingMessages", "OutgoingMessages"]),
            _kql(WIDGETS[3], f"{base} | summarize {_sum('Parked')} {bin_}", ins),
            _kql(WIDGETS[4], "requests | summarize errors = countif(success == false), "
                             "p95_ms = percentile(duration, 95) by bin(timestamp, 5m) "
                             "| render timechart", ins),
            _metrics(WIDGETS[5], p["namespace"], "Microsoft.EventHub/namespaces",
                     ["OutgoingMessages", "ThrottledRequests"]),
            _kql(WIDGETS[6], f"{base} | summarize sink_s = max(todouble(m.metrics.SinkSeconds)), "
                             "object_age_s = max(todouble(m.metrics.ObjectAgeSeconds)) "
                             f"{bin_}", ins),
        ]
        items.append({"type": 1, "name": f"pipeline {p['name']}",
                      "content": {"json": f"## pipeline {p['name']}"}})
        items.extend(cells)
    return {"version": "Notebook/1.0", "items": items,
            "fallbackResourceIds": [pipelines[0]["insights"]] if pipelines else []}


class Observability(pulumi.ComponentResource):
    """``headwater:azure:Observability``: the stack's workbook and Action Group (in the
    first pipeline's resource group), and per pipeline its log alert rules."""

    def __init__(self, name: str, stack: StackConfig, pipelines: Sequence[Pipeline],
                 location: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("headwater:azure:Observability", name, None, opts)
        project, stack_name = pulumi.get_project(), pulumi.get_stack()
        child = pulumi.ResourceOptions(parent=self)
        alerts = stack.alerts
        if alerts.target and not _ACTION_GROUP.match(alerts.target):
            raise PlanError(f"headwater:alerts.target: {alerts.target!r} is not an Action "
                            "Group resource id (/subscriptions/<id>/resourceGroups/<group>/"
                            "providers/microsoft.insights/actionGroups/<name>)")
        group = pipelines[0].group_name
        self.actions: list[pulumi.Input[str]] = [alerts.target] if alerts.target else []
        self.action_group = None
        if stack.alert_emails or alerts.webhook:
            self.action_group = az.monitor.ActionGroup(
                f"{name}-actions", resource_group_name=group, location="Global",
                group_short_name="headwater", enabled=True,
                action_group_name=dashboard_name(project, stack_name, 260),
                email_receivers=[{"name": f"email-{n}", "email_address": e,
                                  "use_common_alert_schema": True}
                                 for n, e in enumerate(stack.alert_emails)],
                webhook_receivers=[{"name": "webhook", "service_uri": alerts.webhook,
                                    "use_common_alert_schema": True}]
                if alerts.webhook else [], opts=child)
            self.actions.insert(0, self.action_group.id)
        self.rules = {p.spec.name: self._rules(p, stack, location) for p in pipelines}
        parts = [pulumi.Output.all(name=p.spec.name, insights=p.insights.id,
                                   namespace=p.namespace.id) for p in pipelines]
        body = pulumi.Output.all(*parts).apply(
            lambda v: json.dumps(workbook_body(project, stack_name, v), sort_keys=True))
        self.workbook = az.applicationinsights.Workbook(
            f"{name}-workbook", resource_group_name=group, location=location, kind="shared",
            category="workbook", display_name=dashboard_name(project, stack_name),
            # a workbook's name must be a GUID: one fixed per project and stack
            resource_name_=str(uuid.uuid5(uuid.NAMESPACE_URL,
                                          f"headwater:{project}:{stack_name}")),
            serialized_data=body, source_id=pipelines[0].insights.id, opts=child)
        self.register_outputs({"workbook": self.workbook.id})

    def _rules(self, p: Pipeline, stack: StackConfig, location: str) -> dict[str, Any]:
        alerts, name = stack.alerts, p.spec.name
        base = base_query(pulumi.get_project(), pulumi.get_stack(), name)
        why = {r.key: f"{r.what}: {r.why}" for r in ALARMS}
        rules = {
            "errors": ("requests | where success == false | summarize n = count()", 0,
                       "Total"),
            "dlq": (f"{base} | summarize n = sum(todouble(m.metrics.Parked))", 0, "Total"),
            "oldest-message": (f"{base} | summarize n = max(todouble(m.metrics."
                               "ObjectAgeSeconds))", alerts.oldest_message_minutes * 60,
                               "Maximum"),
            "deadletter-rate": (f"{base} | summarize d = sum(todouble(m.metrics.DeadLettered)), "
                                "r = sum(todouble(m.metrics.Received)) "
                                "| extend n = iff(r > 0, d / r, 0.0)", alerts.deadletter_rate,
                                "Maximum"),
        }
        out = {}
        for key, (query, threshold, aggregation) in rules.items():
            out[key] = az.monitor.ScheduledQueryRule(
                f"{p._name}-{key}", resource_group_name=p.group_name, location=location,
                kind="LogAlert", display_name=f"headwater {pulumi.get_stack()} {name}: {key}",
                description=why[key], severity=2, enabled=True,
                evaluation_frequency="PT5M", window_size="PT5M",
                scopes=[p.insights.id], auto_mitigate=True,
                criteria={"all_of": [{
                    "query": query, "time_aggregation": aggregation,
                    "metric_measure_column": "n", "operator": "GreaterThan",
                    "threshold": threshold,
                    "failing_periods": {"number_of_evaluation_periods": 1,
                                        "min_failing_periods_to_alert": 1}}]},
                actions={"action_groups": self.actions},
                opts=pulumi.ResourceOptions(parent=self))
        return out
