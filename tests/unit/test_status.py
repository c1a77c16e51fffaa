"""``headwater status`` on the local stack (a real run of the example objects, with its
dead-letters), ``headwater run --metrics-json``, and the health rules."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from headwater.cli import app
from headwater.spec import Alerts
from headwater.status import PipelineStatus, judge, parse_since
from runtimes.core.metrics import METRICS

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "orders"
cli = CliRunner()


@pytest.fixture
def bucket(tmp_path: Path) -> Path:
    dest = tmp_path / "bucket"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("deadletter", "*.py"))
    return dest


def _run(bucket: Path, wh: Path, *extra: str):
    return cli.invoke(app, ["run", "--stack", "local", "--project-dir", str(ROOT), "--root",
                            str(bucket), "--warehouse", str(wh), "--no-progress", "-p", "orders",
                            *extra])


def _status(bucket: Path, wh: Path, project: Path = ROOT, *extra: str):
    return cli.invoke(app, ["status", "--stack", "local", "--project-dir", str(project),
                            "--root", str(bucket), "--warehouse", str(wh), "-p", "orders",
                            *extra])


def test_status_after_a_run_with_deadletters_is_unhealthy_and_names_the_last_error(
        bucket, tmp_path):
    wh = tmp_path / "w.duckdb"
    metrics = tmp_path / "out" / "metrics.json"
    assert _run(bucket, wh, "--metrics-json", str(metrics)).exit_code == 0
    result = _status(bucket, wh)
    assert result.exit_code == 1, result.output  # 4 of 28 records dead-lettered > 1%
    assert "dead-letter rate 14.3%" in result.output and "orders" in result.output
    as_json = _status(bucket, wh, ROOT, "--json")
    assert as_json.exit_code == 1
    doc = json.loads(as_json.output)
    (row,) = doc["pipelines"]
    assert doc["healthy"] is False
    assert (row["objects"], row["records_in"], row["written"], row["dead_lettered"]) == (
        5, 28, 24, 4)
    assert row["problems"] == ["dead-letter rate 14.3% (> 1.0%)"]
    # the newest dead-letter entry: its error and the object it came from
    assert row["last_error_key"].startswith("raw/orders/") and row["last_error"]
    assert row["queue_depth"] is None  # no queue locally

    doc = json.loads(metrics.read_text())
    (orders,) = doc["pipelines"]
    assert orders["dimensions"] == {"project": "headwater", "stack": "local",
                                    "pipeline": "orders"}
    assert set(METRICS) - {"ObjectAgeSeconds"} <= set(orders["metrics"])
    assert (orders["metrics"]["Received"], orders["metrics"]["DeadLettered"]) == (28, 4)


def test_status_is_healthy_under_a_threshold_the_spec_raises(bucket, tmp_path):
    wh = tmp_path / "w.duckdb"
    assert _run(bucket, wh).exit_code == 0
    project = tmp_path / "project"
    project.mkdir()
    doc = yaml.safe_load((ROOT / "Pulumi.local.yaml").read_text())
    doc["config"]["headwater:alerts"] = {"deadletter_rate": 0.5}
    (project / "Pulumi.local.yaml").write_text(yaml.safe_dump(doc))
    result = _status(bucket, wh, project)
    assert result.exit_code == 0, result.output
    assert "ok" in result.output


def test_status_window_excludes_older_runs_and_bad_input_is_explained(bucket, tmp_path):
    wh = tmp_path / "w.duckdb"
    missing = _status(bucket, wh)
    assert missing.exit_code == 1 and "nothing has run yet" in missing.output
    assert _run(bucket, wh).exit_code == 0
    bad = _status(bucket, wh, ROOT, "--since", "yesterday")
    assert bad.exit_code == 1 and "expected a number and a unit" in bad.output


def test_health_rules_are_the_alarm_rules():
    alerts = Alerts(deadletter_rate=0.1, oldest_message_minutes=15)
    assert judge(PipelineStatus("p", records_in=100, dead_lettered=10), alerts).healthy
    assert not judge(PipelineStatus("p", records_in=100, dead_lettered=11), alerts).healthy
    assert judge(PipelineStatus("p", dlq_depth=2), alerts).problems == [
        "2 notification(s) in the dead-letter queue"]
    assert judge(PipelineStatus("p", oldest_age_s=16 * 60), alerts).problems == [
        "oldest notification waits 16 min (> 15)"]
    assert judge(PipelineStatus("p", errors=1), alerts).problems == ["1 function error(s)"]
    assert judge(PipelineStatus("p"), alerts).healthy  # nothing read: nothing broken
    assert parse_since("90m") == 5400 and parse_since("2d") == 172800
