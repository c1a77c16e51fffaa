"""``headwater status --stack aws`` against the moto server: the runtime's metrics the test
puts into CloudWatch (as the EMF line would, with project / stack / pipeline dimensions),
real SQS queue attributes, and the function's log group with an ERROR line. The stack's
outputs come from ``--outputs`` (what ``pulumi stack output --json`` prints)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from headwater.cli import app

ROOT = Path(__file__).resolve().parents[3]
REGION = "eu-west-1"  # Pulumi.aws.yaml's aws:region, which status reads in
FUNCTION = "headwater-aws-orders"
cli = CliRunner()


def _client(name: str):
    return boto3.client(name, region_name=REGION)


@pytest.fixture
def deployed(aws: str, tmp_path: Path) -> Path:
    """The orders pipeline's queues, metrics and log as a deployment would leave them."""
    sqs = _client("sqs")
    urls = {n: sqs.create_queue(QueueName=n)["QueueUrl"]
            for n in ("orders-queue-1", "orders-dlq-1", "signups-queue-1", "signups-dlq-1")}
    for n in range(3):
        sqs.send_message(QueueUrl=urls["orders-queue-1"], MessageBody=f"waiting {n}")
    for n in range(2):
        sqs.send_message(QueueUrl=urls["orders-dlq-1"], MessageBody=f"gave up {n}")
    now = datetime.now(UTC)
    dims = [{"Name": "project", "Value": "headwater"}, {"Name": "stack", "Value": "aws"},
            {"Name": "pipeline", "Value": "orders"}]
    _client("cloudwatch").put_metric_data(Namespace="headwater", MetricData=[
        {"MetricName": name, "Dimensions": dims, "Timestamp": now, "Value": value,
         "Unit": "Count"}
        for name, value in (("Objects", 4), ("Received", 100), ("Written", 90),
                            ("DeadLettered", 10))])
    # another stack's metrics for the same pipeline name are not counted
    other = [{**d, "Value": "prod"} if d["Name"] == "stack" else d for d in dims]
    _client("cloudwatch").put_metric_data(Namespace="headwater", MetricData=[
        {"MetricName": "Received", "Dimensions": other, "Timestamp": now, "Value": 1000}])
    logs = _client("logs")
    group = f"/aws/lambda/{FUNCTION}"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    line = {"level": "ERROR", "message": "object not processed; SQS will redeliver the message",
            "pipeline": "orders", "key": "raw/orders/2024-05-01.ndjson",
            "error_type": "SinkUnavailable", "error": "Firehose throttled"}
    logs.put_log_events(logGroupName=group, logStreamName="s", logEvents=[
        {"timestamp": int(time.time() * 1000), "message": json.dumps(line)}])
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({
        "queue_urls": {"orders": urls["orders-queue-1"], "signups": urls["signups-queue-1"]},
        "dlq_urls": {"orders": urls["orders-dlq-1"], "signups": urls["signups-dlq-1"]},
        "function_names": {"orders": FUNCTION, "signups": "headwater-aws-signups"}}))
    return outputs


def _status(outputs: Path, *extra: str):
    return cli.invoke(app, ["status", "--stack", "aws", "--project-dir", str(ROOT),
                            "--outputs", str(outputs), "--json", *extra])


def test_status_reads_metrics_queues_and_the_last_error_and_exits_1(deployed):
    result = _status(deployed)
    assert result.exit_code == 1, result.output
    doc = json.loads(result.output)
    rows = {r["pipeline"]: r for r in doc["pipelines"]}
    orders = rows["orders"]
    assert (orders["objects"], orders["records_in"], orders["written"],
            orders["dead_lettered"]) == (4, 100, 90, 10)
    assert (orders["queue_depth"], orders["dlq_depth"]) == (3, 2)
    assert orders["problems"] == ["2 notification(s) in the dead-letter queue",
                                  "dead-letter rate 10.0% (> 1.0%)"]
    assert orders["last_error"] == "SinkUnavailable: Firehose throttled"
    assert orders["last_error_key"] == "raw/orders/2024-05-01.ndjson"
    signups = rows["signups"]
    assert signups["problems"] == [] and signups["records_in"] == 0
    assert signups["queue_depth"] == 0 and signups["dlq_depth"] == 0


def test_status_of_a_healthy_pipeline_exits_0_and_prints_the_table(deployed):
    result = cli.invoke(app, ["status", "--stack", "aws", "--project-dir", str(ROOT),
                              "--outputs", str(deployed), "-p", "signups"])
    assert result.exit_code == 0, result.output
    assert "signups" in result.output and "ok" in result.output


def test_status_without_outputs_explains_what_to_pass(aws, tmp_path):
    result = cli.invoke(app, ["status", "--stack", "aws", "--project-dir", str(ROOT),
                              "--outputs", str(tmp_path / "missing.json")])
    assert result.exit_code == 1 and "--outputs" in result.output
