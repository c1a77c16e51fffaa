"""An AWS stack's status, read with the user's credentials (boto3, loaded lazily):

- the runtime's metrics (namespace ``headwater``, dimensions project / stack / pipeline)
  and the function's ``AWS/Lambda`` ``Errors`` from CloudWatch ``GetMetricData``;
- queue and DLQ depth from SQS ``GetQueueAttributes`` (``ApproximateNumberOfMessages``),
  the oldest message's age from ``AWS/SQS`` ``ApproximateAgeOfOldestMessage``;
- the last error and its object key from the function's log group (the newest ``ERROR``
  line the handler wrote, with its ``key``).

Which queue and function belong to a pipeline comes from the stack's outputs
(``queue_urls``, ``dlq_urls``, ``function_names``: ``pulumi stack output --json``).
Permissions needed: ``cloudwatch:GetMetricData``, ``sqs:GetQueueAttributes``,
``logs:FilterLogEvents``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from . import RUNTIME_METRICS, PipelineStatus, StatusError

__all__ = ["RUNTIME_METRICS", "queue_depth", "read_aws"]

NAMESPACE = "headwater"


def _queue_name(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def read_aws(pipelines: list[str], outputs: Mapping[str, Any], project: str, stack: str,
             since_s: int, region: str | None = None,
             now: float | None = None) -> list[PipelineStatus]:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    now = time.time() if now is None else now
    queues = outputs.get("queue_urls") or {}
    dlqs = outputs.get("dlq_urls") or {}
    functions = outputs.get("function_names") or {}
    try:
        session = boto3.session.Session(region_name=region)
        cw, sqs, logs = (session.client(s) for s in ("cloudwatch", "sqs", "logs"))
        out = []
        for name in pipelines:
            st = PipelineStatus(name)
            _metrics(cw, st, project, stack, functions.get(name), queues.get(name), since_s,
                     now)
            if queues.get(name):
                st.queue_depth = queue_depth(sqs, queues[name])
            if dlqs.get(name):
                st.dlq_depth = queue_depth(sqs, dlqs[name])
            if functions.get(name):
                _last_error(logs, st, f"/aws/lambda/{functions[name]}", since_s, now)
            out.append(st)
        return out
    except (BotoCoreError, ClientError) as exc:
        raise StatusError(f"AWS: {exc} (credentials and region of the stack's account; "
                          "needs cloudwatch:GetMetricData, sqs:GetQueueAttributes, "
                          "logs:FilterLogEvents)") from None


def queue_depth(sqs: Any, url: str) -> float:
    """The messages waiting in an SQS queue (``ApproximateNumberOfMessages``)."""
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages"])["Attributes"]
    return float(attrs.get("ApproximateNumberOfMessages", 0))


def _metrics(cw: Any, st: PipelineStatus, project: str, stack: str, function: str | None,
             queue_url: str | None, since_s: int, now: float) -> None:
    dims = [{"Name": "project", "Value": project}, {"Name": "stack", "Value": stack},
            {"Name": "pipeline", "Value": st.pipeline}]
    period = max(60, since_s - since_s % 60)
    queries: list[dict[str, Any]] = [
        {"Id": f"m{n}", "ReturnData": True, "MetricStat": {
            "Metric": {"Namespace": NAMESPACE, "MetricName": metric, "Dimensions": dims},
            "Period": period, "Stat": "Sum"}}
        for n, metric in enumerate(RUNTIME_METRICS)]
    if function:
        queries.append({"Id": "errors", "ReturnData": True, "MetricStat": {
            "Metric": {"Namespace": "AWS/Lambda", "MetricName": "Errors",
                       "Dimensions": [{"Name": "FunctionName", "Value": function}]},
            "Period": period, "Stat": "Sum"}})
    if queue_url:
        queries.append({"Id": "age", "ReturnData": True, "MetricStat": {
            "Metric": {"Namespace": "AWS/SQS", "MetricName": "ApproximateAgeOfOldestMessage",
                       "Dimensions": [{"Name": "QueueName", "Value": _queue_name(queue_url)}]},
            "Period": 60, "Stat": "Maximum"}})
    result = cw.get_metric_data(
        MetricDataQueries=queries, StartTime=datetime.fromtimestamp(now - since_s, UTC),
        EndTime=datetime.fromtimestamp(now + 60, UTC), ScanBy="TimestampDescending")
    fields = {f"m{n}": f for n, f in enumerate(RUNTIME_METRICS.values())}
    for r in result.get("MetricDataResults", []):
        values = r.get("Values") or []
        if r["Id"] in fields:
            setattr(st, fields[r["Id"]], float(sum(values)))
        elif r["Id"] == "errors":
            st.errors = float(sum(values))
        elif r["Id"] == "age" and values:
            st.oldest_age_s = float(values[0])  # the newest reading


def _last_error(logs: Any, st: PipelineStatus, group: str, since_s: int, now: float) -> None:
    try:
        events = logs.filter_log_events(
            logGroupName=group, startTime=int((now - since_s) * 1000),
            endTime=int(now * 1000) + 60_000, filterPattern='{ $.level = "ERROR" }'
        ).get("events", [])
    except Exception as exc:  # a missing group: nothing has run; anything else: say so
        if "ResourceNotFound" not in f"{type(exc).__name__} {exc}":
            st.last_error = f"(log group {group} not readable: {exc})"
        return
    for event in sorted(events, key=lambda e: e.get("timestamp", 0), reverse=True):
        try:
            line = json.loads(event.get("message", ""))
        except ValueError:
            continue
        if isinstance(line, dict) and line.get("level") == "ERROR":
            st.last_error = (f"{line.get('error_type', '')}: {line.get('error', '')}".strip(": ")
                             or str(line.get("message", "")))
            st.last_error_key = str(line.get("key") or line.get("object") or "")
            return
