"""``headwater status --stack azure``: :func:`headwater.status.azure.read_azure` and the CLI.

Application Insights has no emulator: its query API is a stand-in at the REST boundary, an
HTTP server on 127.0.0.1 answering ``POST /v1/apps/{appId}/query`` (``query`` and
``timespan`` in the body, a bearer token) with the documented response shape (``tables``
of ``name``, ``columns`` of ``name`` / ``type``, ``rows``) and the documented error object
(``{"error": {"code", "message"}}``); it checks that the KQL names the project, stack and
pipeline, and the window. The token comes from a static credential (``get_token`` returning
an ``AccessToken``). The parked notifications are real blobs on Azurite, written by the
runtime's own :class:`~runtimes.azure.deadletter.BlobDeadLetter`.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError
from azure.storage.blob import BlobServiceClient
from typer.testing import CliRunner

from headwater.cli import app
from headwater.spec import Alerts
from headwater.status import StatusError, judge
from headwater.status import azure as status_azure
from headwater.testing.http import JsonHandler, serve
from runtimes.azure.deadletter import BlobDeadLetter
from runtimes.core.replay import mark

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "stand-in-token"
APPS = {"orders": "6f1c2a8e-0000-4000-8000-00000000000a",
        "signups": "6f1c2a8e-0000-4000-8000-00000000000b"}
NOW = time.time()
COUNTS = [{"name": n, "type": "real"} for n in
          ("Objects", "Received", "Written", "DeadLettered", "ObjectAgeSeconds")] + [
    {"name": "Errors", "type": "long"}]
LAST = [{"name": "timestamp", "type": "datetime"}, {"name": "error_type", "type": "string"},
        {"name": "error", "type": "string"}, {"name": "message", "type": "string"},
        {"name": "blob", "type": "string"}]
cli = CliRunner()


class StaticCredential:
    """A token credential that never signs in: the stand-in checks its token."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token, self.scopes = token, []

    def get_token(self, *scopes: str, **_: Any) -> AccessToken:
        self.scopes.extend(scopes)
        return AccessToken(self.token, int(time.time()) + 3600)


@dataclass
class QueryApi:
    """The stand-in: per app id, the rows of the counts and last-error queries (or an
    HTTP status to refuse with); every request it received."""

    url: str = ""
    counts: dict[str, list[list[Any]]] = field(default_factory=dict)
    last: dict[str, list[list[Any]]] = field(default_factory=dict)
    refuse: dict[str, int] = field(default_factory=dict)
    seen: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@pytest.fixture
def query_api() -> Iterator[QueryApi]:
    api = QueryApi()

    class Handler(JsonHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.read_json()
            parts = self.path.strip("/").split("/")  # v1 apps {appId} query
            app_id = parts[2] if len(parts) == 4 and parts[:2] == ["v1", "apps"] else ""
            api.seen.append((app_id, body))
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                return self.send_json(401, {"error": {
                    "code": "AuthorizationRequiredError",
                    "message": "Valid authentication was not provided"}})
            if app_id in api.refuse:
                return self.send_json(api.refuse[app_id], {"error": {
                    "code": "InsufficientAccessError", "message": "The provided credentials "
                    "have insufficient access to perform the requested operation"}})
            if parts[3:] != ["query"] or app_id not in APPS.values():
                return self.send_json(404, {"error": {"code": "PathNotFoundError",
                                                      "message": "not found"}})
            kql = body["query"]
            if "| summarize" in kql:
                table = {"name": "PrimaryResult", "columns": COUNTS,
                         "rows": api.counts.get(app_id, [])}
            else:
                table = {"name": "PrimaryResult", "columns": LAST,
                         "rows": api.last.get(app_id, [])}
            self.send_json(200, {"tables": [table]}, "application/json; charset=utf-8")

    with serve(Handler) as api.url:
        yield api


@pytest.fixture
def deadletter(azurite) -> Iterator[Any]:
    """The dead-letter container on Azurite, empty."""
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    for c in service.list_containers():
        service.delete_container(c.name)
    container = service.create_container("deadletter")
    yield container
    service.close()


def _outputs(azurite) -> dict[str, Any]:
    dl = {"HEADWATER_BLOB_ACCOUNT_URL": azurite.blob_url,
          "HEADWATER_DEADLETTER_CONTAINER": "deadletter",
          "HEADWATER_DEADLETTER_PREFIX": "deadletter/"}
    return {"insights_app_ids": dict(APPS), "function_settings": {"orders": dl, "signups": dl}}


def _read(azurite, api: QueryApi, pipelines=("orders", "signups"), credential=None, **kw):
    def service(url: str) -> BlobServiceClient:
        assert url == azurite.blob_url  # the pipeline's account, from function_settings
        return BlobServiceClient.from_connection_string(azurite.connection_string)

    return status_azure.read_azure(
        list(pipelines), kw.pop("outputs", None) or _outputs(azurite), "headwater", "azure",
        3600, now=NOW, credential=credential or StaticCredential(), endpoint=api.url,
        blob_service=service, **kw)


def _park(container, pipeline: str, n: int) -> list[str]:
    dl = BlobDeadLetter(container, "deadletter/")
    return [dl.notification(pipeline, b"[]", "blob not processed", RuntimeError("boom"),
                            {"name": f"raw/{pipeline}/{i}.json"}) for i in range(n)]


def test_healthy_pipelines_read_from_the_query_api_and_the_dead_letter_container(
        azurite, query_api, deadletter):
    query_api.counts[APPS["orders"]] = [[4, 100, 100, 0, 12.5, 0]]
    # a replayed notification and a record dead-letter file are not waiting
    (name,) = _park(deadletter, "orders", 1)
    mark(BlobDeadLetter(deadletter, "deadletter/").store(), "deadletter/notifications/",
         "orders", name)
    deadletter.upload_blob("deadletter/orders/dt=2024-05-01/a.ndjson", b"{}\n")
    cred = StaticCredential()
    rows = {r.pipeline: judge(r, Alerts()) for r in _read(azurite, query_api, credential=cred)}
    orders = rows["orders"]
    assert (orders.objects, orders.records_in, orders.written, orders.dead_lettered,
            orders.errors, orders.oldest_age_s, orders.dlq_depth) == (4, 100, 100, 0, 0, 12.5, 0)
    assert orders.queue_depth is None and orders.last_error == "" and orders.healthy
    assert cred.scopes == ["https://api.applicationinsights.io/.default"]
    # each pipeline's own app, its names in the KQL, the window as an ISO 8601 interval
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW - 3600))
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW))
    for app_id, body in query_api.seen:
        pipeline = next(p for p, a in APPS.items() if a == app_id)
        assert body["timespan"] == f"{start}/{end}"
        assert f'tostring(m.pipeline) == "{pipeline}"' in body["query"]
        if "| summarize" in body["query"]:
            assert 'tostring(m.project) == "headwater"' in body["query"]
            assert 'tostring(m.stack) == "azure"' in body["query"]
            assert "m.metrics.Received" in body["query"] and "requests" in body["query"]
    assert sorted(a for a, _ in query_api.seen) == sorted([*APPS.values()] * 2)


def test_an_unhealthy_pipeline_breaks_the_alarm_rules_and_names_the_last_error(
        azurite, query_api, deadletter):
    query_api.counts[APPS["orders"]] = [[4, 100, 90, 10, 30.0, 2]]
    query_api.last[APPS["orders"]] = [
        ["2024-05-01T10:00:00Z", "SinkUnavailable", "Event Hubs throttled",
         "blob not processed: notification parked", "raw/orders/2024-05-01.ndjson"]]
    _park(deadletter, "orders", 2)
    _park(deadletter, "signups", 1)
    rows = {r.pipeline: judge(r, Alerts()) for r in _read(azurite, query_api, ["orders"])}
    orders = rows["orders"]
    assert orders.dlq_depth == 2
    assert orders.problems == ["2 function error(s)",
                               "2 notification(s) in the dead-letter queue",
                               "dead-letter rate 10.0% (> 1.0%)"]
    assert orders.last_error == "SinkUnavailable: Event Hubs throttled"
    assert orders.last_error_key == "raw/orders/2024-05-01.ndjson"


def test_no_rows_read_as_zeros(azurite, query_api, deadletter):
    (orders,) = _read(azurite, query_api, ["orders"])
    assert (orders.objects, orders.records_in, orders.written, orders.dead_lettered,
            orders.errors, orders.dlq_depth) == (0, 0, 0, 0, 0, 0)
    assert orders.oldest_age_s is None and orders.last_error == ""
    assert judge(orders, Alerts()).healthy


def test_a_403_names_the_roles_to_grant(azurite, query_api, deadletter):
    query_api.refuse[APPS["orders"]] = 403
    with pytest.raises(StatusError, match=r"403.*insufficient access.*Monitoring Reader.*"
                                          r"Storage Blob Data Reader"):
        _read(azurite, query_api, ["orders"])


def test_no_credentials_say_az_login(azurite, query_api, deadletter):
    class NoCredential:
        def get_token(self, *scopes: str, **_: Any) -> AccessToken:
            raise ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token")

    with pytest.raises(StatusError, match="az login"):
        _read(azurite, query_api, ["orders"], credential=NoCredential())
    assert query_api.seen == []


def test_outputs_without_insights_app_ids_say_to_deploy_again(azurite, query_api):
    with pytest.raises(StatusError, match="insights_app_ids"):
        _read(azurite, query_api, outputs={"function_settings": {}})


def test_cli_status_json_with_outputs_file(azurite, query_api, deadletter, tmp_path,
                                           monkeypatch):
    query_api.counts[APPS["orders"]] = [[4, 100, 99, 1, 20.0, 0]]
    query_api.counts[APPS["signups"]] = [[1, 10, 10, 0, 5.0, 0]]
    _park(deadletter, "orders", 1)
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(_outputs(azurite)), encoding="utf-8")
    service = functools.partial(BlobServiceClient.from_connection_string,
                                azurite.connection_string)
    # the CLI's own call, with the stand-ins' credential, endpoint and Azurite client
    monkeypatch.setattr(status_azure, "read_azure", functools.partial(
        status_azure.read_azure, credential=StaticCredential(), endpoint=query_api.url,
        blob_service=lambda url: service()))
    result = cli.invoke(app, ["status", "--stack", "azure", "--project-dir", str(ROOT),
                              "--outputs", str(outputs), "--json"])
    assert result.exit_code == 1, result.output
    doc = json.loads(result.output)
    assert (doc["cloud"], doc["healthy"]) == ("azure", False)
    rows = {r["pipeline"]: r for r in doc["pipelines"]}
    assert rows["orders"]["problems"] == ["1 notification(s) in the dead-letter queue"]
    assert rows["orders"]["records_in"] == 100 and rows["orders"]["dlq_depth"] == 1
    assert rows["signups"]["problems"] == [] and rows["signups"]["written"] == 10
    # without --json, a healthy pipeline prints the table and exits 0
    result = cli.invoke(app, ["status", "--stack", "azure", "--project-dir", str(ROOT),
                              "--outputs", str(outputs), "-p", "signups"])
    assert result.exit_code == 0, result.output
    assert "signups" in result.output and "ok" in result.output
