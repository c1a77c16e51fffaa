"""``headwater status`` on a GCP stack: the real reader (``headwater/status/gcp.py``) and its
google-auth ``AuthorizedSession`` against :class:`GcpStandIn`, a stand-in at the REST
boundary (not an emulator: none exists for Cloud Logging or Cloud Monitoring). It is a
local HTTP server answering Cloud Logging ``entries:list`` (filtered by the request's
window, paged with ``nextPageToken``) and Cloud Monitoring ``timeSeries.list`` (points
newest first, ``int64Value`` as a JSON string) in the documented shapes, and recording
every request so the tests check the filters sent."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import google.auth
import pytest
from google.auth.credentials import AnonymousCredentials
from google.auth.exceptions import DefaultCredentialsError
from google.auth.transport.requests import AuthorizedSession
from typer.testing import CliRunner

from headwater.cli import app
from headwater.spec import Alerts
from headwater.status import StatusError, judge
from headwater.status import gcp as status_gcp
from headwater.status.gcp import read_gcp
from headwater.testing.http import JsonHandler, Server

ROOT = Path(__file__).resolve().parents[2]
PROJECT_ID = "test-proj"
NOW = 1_700_000_000.0
OUTPUTS = {
    "project_id": PROJECT_ID,
    "functions": {"orders": "headwater-gcp-orders-abc1234",
                  "signups": "headwater-gcp-signups-def5678"},
    "subscriptions": {"orders": "orders-push-1111111", "signups": "signups-push-2222222"},
    "dead_letter_subscriptions": {"orders": "orders-dead-letter-sub-3333333",
                                  "signups": "signups-dead-letter-sub-4444444"},
}
NUM_UNDELIVERED = "pubsub.googleapis.com/subscription/num_undelivered_messages"
OLDEST_AGE = "pubsub.googleapis.com/subscription/oldest_unacked_message_age"


def _ts(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _field(flt: str, name: str) -> str | None:
    m = re.search(re.escape(name) + r'\s*(?:=|>=)\s*"((?:[^"\\]|\\.)*)"', flt)
    return m.group(1) if m else None


class GcpStandIn:
    """``requests[(project, stack, pipeline)]`` / ``errors[service]``: the log entries
    (``timestamp``, ``severity``, ``jsonPayload``) in any order; ``gauges[(metric, sub)]``:
    the points' values, newest first. ``page`` entries a page; ``fail``: an HTTP status to
    answer every request with. ``seen`` holds every request (path, body or query)."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        self.errors: dict[str, list[dict[str, Any]]] = {}
        self.gauges: dict[tuple[str, str], list[int]] = {}
        self.page = 2
        self.fail: int | None = None
        self.seen: list[dict[str, Any]] = []
        stand_in = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.read_json()
                stand_in.seen.append({"path": self.path, **body})
                if stand_in.fail:
                    return self._error(stand_in.fail)
                if self.path != "/v2/entries:list":
                    return self._error(404)
                self.send_json(200, stand_in.entries_list(body))

            def do_GET(self) -> None:  # noqa: N802
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                stand_in.seen.append({"path": url.path, **query})
                if stand_in.fail:
                    return self._error(stand_in.fail)
                if url.path != f"/v3/projects/{PROJECT_ID}/timeSeries":
                    return self._error(404)
                self.send_json(200, stand_in.time_series(query))

            def _error(self, code: int) -> None:
                status = {403: "PERMISSION_DENIED", 404: "NOT_FOUND"}.get(code, "UNKNOWN")
                self.send_json(code, {"error": {"code": code, "status": status, "message":
                                                f"refused by the test ({status})"}})

        self.server = Server(Handler)
        self.url = self.server.url

    def entries_list(self, body: dict[str, Any]) -> dict[str, Any]:
        assert body["resourceNames"] == [f"projects/{PROJECT_ID}"]
        assert 0 < body["pageSize"] <= 1000  # the API refuses more
        flt = body["filter"]
        since = _field(flt, "timestamp")
        assert since, flt  # always a window
        if 'jsonPayload.message="headwater request"' in flt:
            key = tuple(_field(flt, f"jsonPayload.{k}") for k in
                        ("project", "stack", "pipeline"))
            entries = self.requests.get(key, [])  # type: ignore[arg-type]
        else:
            assert "severity>=ERROR" in flt, flt
            entries = self.errors.get(_field(flt, "resource.labels.service_name") or "", [])
        entries = sorted((e for e in entries if e["timestamp"] >= since),
                         key=lambda e: e["timestamp"],
                         reverse=body.get("orderBy") == "timestamp desc")
        start = int(body.get("pageToken") or 0)
        out: dict[str, Any] = {"entries": entries[start:start + self.page]}
        if start + self.page < len(entries):
            out["nextPageToken"] = str(start + self.page)
        if not out["entries"]:
            del out["entries"]  # an empty list is omitted, as the API does
        return out

    def time_series(self, query: dict[str, str]) -> dict[str, Any]:
        assert query["interval.startTime"] < query["interval.endTime"]
        metric = _field(query["filter"], "metric.type")
        sub = _field(query["filter"], "resource.labels.subscription_id")
        values = self.gauges.get((metric or "", sub or ""))
        if not values:
            return {"unit": ""}
        end = datetime.fromisoformat(query["interval.endTime"].replace("Z", "+00:00"))
        points = [{"interval": {"startTime": _ts(end.timestamp() - 60 * n),
                                "endTime": _ts(end.timestamp() - 60 * n)},
                   "value": {"int64Value": str(v)}} for n, v in enumerate(values)]
        return {"timeSeries": [{
            "metric": {"type": metric}, "metricKind": "GAUGE", "valueType": "INT64",
            "resource": {"type": "pubsub_subscription",
                         "labels": {"project_id": PROJECT_ID, "subscription_id": sub}},
            "points": points}], "unit": ""}

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def stand_in():
    server = GcpStandIn()
    yield server
    server.close()


def request_entry(t: float, pipeline: str = "orders", stack: str = "gcp", **metrics: float):
    return {"logName": f"projects/{PROJECT_ID}/logs/run.googleapis.com%2Fstdout",
            "timestamp": _ts(t), "severity": "INFO", "insertId": f"{t}",
            "resource": {"type": "cloud_run_revision", "labels": {"service_name": "x"}},
            "jsonPayload": {"level": "INFO", "message": "headwater request",
                            "project": "headwater", "stack": stack, "pipeline": pipeline,
                            "metrics": {"Seconds": 0.2, **metrics}}}


def error_entry(t: float, error: str, obj: str) -> dict[str, Any]:
    return {"timestamp": _ts(t), "severity": "ERROR", "insertId": f"e{t}",
            "jsonPayload": {"level": "ERROR", "message": "object not processed; Pub/Sub will "
                            "redeliver the notification", "pipeline": "orders",
                            "bucket": "raw", "object": obj, "error_type": "KeyError",
                            "error": error}}


def read(stand_in: GcpStandIn, pipelines=("orders",), since_s=3600, **kw):
    return read_gcp(list(pipelines), kw.pop("outputs", OUTPUTS), "headwater", "gcp", since_s,
                    now=NOW, session=AuthorizedSession(AnonymousCredentials()),
                    logging_url=stand_in.url, monitoring_url=stand_in.url, **kw)


def test_sums_every_page_of_the_window_and_a_healthy_pipeline_is_ok(stand_in):
    stand_in.requests[("headwater", "gcp", "orders")] = [
        request_entry(NOW - 60 * n, Objects=1, Received=10, Written=10, DeadLettered=0)
        for n in range(1, 6)] + [
        request_entry(NOW - 7200, Objects=1, Received=999, Written=0, DeadLettered=999)]
    # another stack's lines are not this stack's
    stand_in.requests[("headwater", "prod", "orders")] = [
        request_entry(NOW - 60, stack="prod", Objects=1, Received=5)]
    stand_in.gauges[(NUM_UNDELIVERED, "orders-push-1111111")] = [2, 7]
    stand_in.gauges[(OLDEST_AGE, "orders-push-1111111")] = [30, 400]
    stand_in.gauges[(NUM_UNDELIVERED, "orders-dead-letter-sub-3333333")] = [0]

    (st,) = read(stand_in)

    assert (st.objects, st.records_in, st.written, st.dead_lettered) == (5, 50, 50, 0)
    assert (st.queue_depth, st.oldest_age_s, st.dlq_depth) == (2, 30, 0)  # the newest points
    assert (st.errors, st.last_error, st.notes) == (0, "", [])
    assert judge(st, Alerts()).healthy
    lists = [r for r in stand_in.seen if r["path"] == "/v2/entries:list"
             and "headwater request" in r["filter"]]
    assert [r.get("pageToken") for r in lists] == [None, "2", "4"]  # 5 entries, 2 a page
    flt = lists[0]["filter"]
    for part in ('jsonPayload.pipeline="orders"', 'jsonPayload.stack="gcp"',
                 'jsonPayload.project="headwater"', f'timestamp>="{_ts(NOW - 3600)}"'):
        assert part in flt
    (errors,) = [r for r in stand_in.seen if "severity>=ERROR" in r.get("filter", "")]
    assert 'resource.labels.service_name="headwater-gcp-orders-abc1234"' in errors["filter"]
    assert errors["orderBy"] == "timestamp desc"
    gauges = [r for r in stand_in.seen if r["path"].endswith("/timeSeries")]
    assert len(gauges) == 3 and all(r["interval.endTime"] == _ts(NOW) for r in gauges)


def test_a_pipeline_breaking_every_rule_is_judged_unhealthy(stand_in):
    stand_in.requests[("headwater", "gcp", "orders")] = [
        request_entry(NOW - 120, Objects=2, Received=100, Written=90, DeadLettered=10)]
    stand_in.errors["headwater-gcp-orders-abc1234"] = [
        error_entry(NOW - 300, "'old'", "raw/orders/a.json"),
        error_entry(NOW - 30, "'user_id'", "raw/orders/b.json"),
        error_entry(NOW - 90, "'mid'", "raw/orders/c.json"),
        error_entry(NOW - 9000, "'outside the window'", "raw/orders/z.json")]
    stand_in.gauges[(NUM_UNDELIVERED, "orders-push-1111111")] = [4]
    stand_in.gauges[(OLDEST_AGE, "orders-push-1111111")] = [1200]
    stand_in.gauges[(NUM_UNDELIVERED, "orders-dead-letter-sub-3333333")] = [3, 1]

    (st,) = read(stand_in)
    judge(st, Alerts(oldest_message_minutes=15))

    assert (st.errors, st.dlq_depth, st.oldest_age_s) == (3, 3, 1200)
    assert (st.last_error, st.last_error_key) == ("KeyError: 'user_id'", "raw/orders/b.json")
    assert st.problems == ["3 function error(s)", "3 notification(s) in the dead-letter queue",
                           "oldest notification waits 20 min (> 15)",
                           "dead-letter rate 10.0% (> 1.0%)"]


def test_nothing_run_yet_reads_zeros_and_no_depth(stand_in):
    rows = read(stand_in, pipelines=("orders", "signups"))
    for st in rows:
        assert (st.objects, st.records_in, st.written, st.dead_lettered, st.errors) == (
            0, 0, 0, 0, 0)
        assert (st.queue_depth, st.dlq_depth, st.oldest_age_s) == (None, None, None)
        assert judge(st, Alerts()).healthy
    assert [r.pipeline for r in rows] == ["orders", "signups"]


def test_a_capped_reading_says_so(stand_in, monkeypatch):
    monkeypatch.setattr(status_gcp, "MAX_PAGES", 2)
    stand_in.requests[("headwater", "gcp", "orders")] = [
        request_entry(NOW - n, Objects=1, Received=1) for n in range(1, 6)]
    (st,) = read(stand_in)
    assert st.records_in == 4  # two pages of two
    assert st.notes == ["records: read the first 2000 log entries only (a shorter --since "
                        "reads them all)"]


def test_permission_denied_names_the_roles(stand_in):
    stand_in.fail = 403
    with pytest.raises(StatusError) as info:
        read(stand_in)
    text = str(info.value)
    assert "HTTP 403" in text and "roles/logging.viewer" in text
    assert "roles/monitoring.viewer" in text and PROJECT_ID in text


def test_a_wrong_project_or_no_credentials_is_explained(stand_in, monkeypatch):
    stand_in.fail = 404
    with pytest.raises(StatusError, match="is project test-proj right"):
        read(stand_in)

    def no_credentials(**kw: Any):
        raise DefaultCredentialsError("Your default credentials were not found.")

    monkeypatch.setattr(google.auth, "default", no_credentials)
    with pytest.raises(StatusError, match="gcloud auth application-default login"):
        read_gcp(["orders"], OUTPUTS, "headwater", "gcp", 3600, now=NOW)
    with pytest.raises(StatusError, match="project_id"):
        read_gcp(["orders"], {"functions": {}}, "headwater", "gcp", 3600, now=NOW)


@pytest.fixture
def cli_stand_in(stand_in, monkeypatch, tmp_path):
    """The CLI as a user runs it, its Application Default Credentials anonymous and the
    APIs' base URLs the stand-in's."""
    monkeypatch.setattr(google.auth, "default",
                        lambda **kw: (AnonymousCredentials(), None))
    monkeypatch.setattr(status_gcp, "LOGGING_URL", stand_in.url)
    monkeypatch.setattr(status_gcp, "MONITORING_URL", stand_in.url)
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(OUTPUTS))
    return stand_in, outputs


def _status(outputs: Path, *extra: str):
    return CliRunner().invoke(app, ["status", "--stack", "gcp", "--project-dir", str(ROOT),
                                    "--outputs", str(outputs), *extra])


def test_cli_json_exits_1_on_an_unhealthy_pipeline(cli_stand_in):
    stand_in, outputs = cli_stand_in
    now = time.time()
    stand_in.requests[("headwater", "gcp", "orders")] = [
        request_entry(now - 60, Objects=1, Received=28, Written=24, DeadLettered=4)]
    stand_in.requests[("headwater", "gcp", "signups")] = [
        request_entry(now - 60, pipeline="signups", Objects=1, Received=3, Written=3)]
    stand_in.errors["headwater-gcp-orders-abc1234"] = [
        error_entry(now - 30, "'user_id'", "raw/orders/b.json")]
    stand_in.gauges[(NUM_UNDELIVERED, "orders-dead-letter-sub-3333333")] = [1]

    result = _status(outputs, "--json", "--since", "30m")

    assert result.exit_code == 1, result.output
    doc = json.loads(result.output)
    assert (doc["cloud"], doc["stack"], doc["since"], doc["healthy"]) == (
        "gcp", "gcp", "30m", False)
    orders, signups = doc["pipelines"]
    assert (orders["records_in"], orders["written"], orders["dead_lettered"]) == (28, 24, 4)
    assert orders["problems"] == ["1 function error(s)",
                                  "1 notification(s) in the dead-letter queue",
                                  "dead-letter rate 14.3% (> 1.0%)"]
    assert orders["last_error_key"] == "raw/orders/b.json"
    assert (signups["records_in"], signups["problems"]) == (3, [])


def test_cli_table_of_a_healthy_pipeline_exits_0(cli_stand_in):
    stand_in, outputs = cli_stand_in
    stand_in.requests[("headwater", "gcp", "signups")] = [
        request_entry(time.time() - 60, pipeline="signups", Objects=1, Received=3,
                      Written=3)]
    result = _status(outputs, "-p", "signups")
    assert result.exit_code == 0, result.output
    assert "signups" in result.output and "ok" in result.output
    stand_in.fail = 403
    denied = _status(outputs, "-p", "signups")
    assert denied.exit_code == 1 and "roles/monitoring.viewer" in denied.output
