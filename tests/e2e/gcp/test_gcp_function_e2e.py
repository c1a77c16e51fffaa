"""The Cloud Functions entry point end to end, served by the real functions-framework app
(``functions_framework.create_app``, in process), reading objects from
gcp-storage-emulator, looking users up in the Firestore emulator, writing dead-letters to
the storage emulator and rows through the real google-cloud-bigquery client to the
BigQuery stand-in (see ``conftest.BigQueryStandIn``: a stand-in at the REST boundary,
not an emulator). Each request is the Pub/Sub push body of the notification GCS sends for
the object (attributes and JSON_API_V1 payload as documented, see tests/events/gcp/).
"""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
from e2e.samples import BAD, DAY, GOOD, order

from headwater.testing.http import JsonHandler, serve
from runtimes.gcp import main

pytestmark = pytest.mark.e2e


def _rows(stand_in: Any) -> list[dict[str, Any]]:
    return sorted(({k: v for k, v in r.items() if k != "_headwater_id"} for r in stand_in.rows),
                  key=lambda r: int(r["order_id"]))


def test_push_writes_transformed_enriched_rows_and_deadletters_bad_records(orders_stack, client,
                                                                            capsys):
    st = orders_stack
    good, bad = st.put(DAY + "good.ndjson", GOOD), st.put(DAY + "bad.ndjson", BAD)
    gz = st.put(DAY + "more.ndjson.gz", gzip.compress(
        b'{"order_id": 4, "user_id": "u3", "value": 0.1, "category": "food", '
        b'"ts": "2024-05-01T12:00:00Z"}\n', mtime=0))
    for n, blob in enumerate((good, bad, gz)):
        assert client.post("/", json=st.push_body(blob, message_id=str(n))).status_code == 204

    assert _rows(st.bigquery) == [
        order("1", "u1", 1999, "BOOKS", "2024-05-01T10:00:00Z"),
        order("2", "u2", 123450, "GARDEN", "2024-05-01T11:30:00Z"),
        order("3", "u1", 7, "TOYS", "2024-05-01T12:00:00Z"),
        order("4", "u3", 10, "FOOD", "2024-05-01T12:00:00Z"),
        order("7", "u1", 250, "BOOKS", "2024-05-01T14:00:00Z"),
    ]
    (request, *_) = st.bigquery.requests
    assert request["path"] == \
        "/bigquery/v2/projects/test-proj/datasets/headwater_gcp_orders/tables/orders/insertAll"
    assert request["ignoreUnknownValues"] is True and request["skipInvalidRows"] is False
    assert all(r["insertId"] == r["json"]["_headwater_id"] for r in request["rows"])

    (name, entries), = st.deadletters().items()
    assert name.startswith("deadletter/orders/dt=") and name.endswith(".ndjson")
    source = {"bucket": st.raw, "key": DAY + "bad.ndjson", "version": str(bad.generation)}
    assert [(e["source"], e["line"], e["step"], e["error_type"]) for e in entries] == [
        (source, 2, "decode", "JSONDecodeError"),
        (source, 3, "1:cents", "ValueError"),
        (source, 4, "3:enrich", "LookupError"),
    ]
    logs = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    requests = [x for x in logs if x["message"] == "headwater request"]
    assert len(requests) == 3 and requests[0]["severity"] == "INFO"
    # the shared vocabulary, with its dimensions, and the object's age from timeCreated
    assert requests[1]["metrics"]["Written"] == 1
    assert requests[1]["metrics"]["DeadLettered"] == 3
    assert requests[1]["metrics"]["Objects"] == 1
    assert 0 <= requests[1]["metrics"]["ObjectAgeSeconds"] < 600
    assert {requests[1][d] for d in ("project", "stack")} and requests[1]["pipeline"] == "orders"
    assert requests[1]["object"] == DAY + "bad.ndjson"


def test_the_same_notification_twice_writes_no_duplicate_rows(orders_stack, client):
    st = orders_stack
    blob = st.put(DAY + "good.ndjson", GOOD)
    body = st.push_body(blob)
    assert client.post("/", json=body).status_code == 204
    first = [r["insertId"] for r in st.bigquery.requests[0]["rows"]]
    assert client.post("/", json=body).status_code == 204
    again = [r["insertId"] for r in st.bigquery.requests[1]["rows"]]
    assert first == again and len(set(first)) == 3  # stable per record
    assert len(st.bigquery.rows) == 3


def test_rows_bigquery_rejects_are_deadlettered_and_only_stopped_rows_retried(orders_stack,
                                                                            client):
    st = orders_stack
    st.bigquery.reject = lambda row: "invalid" if row["order_id"] == "2" else None
    blob = st.put(DAY + "good.ndjson", GOOD)
    assert client.post("/", json=st.push_body(blob)).status_code == 204
    assert [r["order_id"] for r in _rows(st.bigquery)] == ["1", "3"]
    first, second = st.bigquery.requests
    assert len(first["rows"]) == 3
    # the retry carries the two rows BigQuery stopped, never the invalid one
    assert [r["json"]["order_id"] for r in second["rows"]] == ["1", "3"]
    (entries,) = st.deadletters().values()
    assert [(e["line"], e["step"], e["error_type"]) for e in entries] == [(2, "sink", "invalid")]
    assert "value_cents" in entries[0]["message"] and entries[0]["record"]["order_id"] == "2"


def test_a_transient_row_error_is_retried_alone(orders_stack, client):
    st = orders_stack
    blob = st.put(DAY + "good.ndjson", GOOD)
    body = st.push_body(blob)
    # find the second row's insertId by a dry run through a stand-in that keeps nothing
    assert client.post("/", json=body).status_code == 204
    rid = st.bigquery.requests[0]["rows"][1]["insertId"]
    st.bigquery.rows.clear(), st.bigquery.ids.clear(), st.bigquery.requests.clear()
    st.bigquery.transient.add(rid)
    assert client.post("/", json=body).status_code == 204
    assert [len(r["rows"]) for r in st.bigquery.requests] == [3, 1]
    assert st.bigquery.requests[1]["rows"][0]["insertId"] == rid
    assert len(st.bigquery.rows) == 3 and st.deadletters() == {}


class _Forbidden(JsonHandler):
    def do_GET(self) -> None:  # noqa: N802
        self.send_json(403, {"error": {"code": 403, "message": "no storage.objects.get"}})


def test_an_unreadable_object_fails_the_request_so_pubsub_redelivers(orders_stack, client,
                                                                     monkeypatch, capsys):
    """Storage answering 403 (a permission missing) for the object."""
    st = orders_stack
    blob = st.put(DAY + "good.ndjson", GOOD)
    with serve(_Forbidden) as url:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)
        main._reset()
        response = client.post("/", json=st.push_body(blob))
    assert response.status_code == 500
    assert st.bigquery.rows == []
    err = [json.loads(x) for x in capsys.readouterr().out.splitlines()
           if '"severity":"ERROR"' in x]
    assert err and err[-1]["object"] == DAY + "good.ndjson" and "traceback" in err[-1]


def test_an_unwritable_deadletter_fails_the_request(orders_stack, client):
    st = orders_stack
    st.gcs.bucket(st.deadletter).delete()
    blob = st.put(DAY + "bad.ndjson", BAD)
    assert client.post("/", json=st.push_body(blob)).status_code == 500


def test_other_events_and_objects_outside_the_prefix_are_acknowledged_without_work(
        orders_stack, client):
    st = orders_stack
    blob = st.put(DAY + "good.ndjson", GOOD)
    deleted = st.push_body(blob, event_type="OBJECT_DELETE")
    assert client.post("/", json=deleted).status_code == 204
    elsewhere = st.put("elsewhere/good.ndjson", GOOD)
    assert client.post("/", json=st.push_body(elsewhere)).status_code == 204
    assert st.bigquery.requests == [] and st.deadletters() == {}


def test_a_body_that_is_no_notification_is_refused(orders_stack, client):
    response = client.post("/", json={"message": {"data": "", "attributes": {}}})
    assert response.status_code == 400
    assert b"eventType" in response.data


def test_a_folder_placeholder_writes_nothing(orders_stack, client):
    st = orders_stack
    blob = st.put(DAY, b"")
    assert client.post("/", json=st.push_body(blob)).status_code == 204
    assert st.bigquery.rows == [] and st.deadletters() == {}


def test_a_poison_object_is_acknowledged_with_one_deadletter_entry(orders_stack, client):
    st = orders_stack
    blob = st.put(DAY + "broken.ndjson.gz", b"this is not gzip")
    assert client.post("/", json=st.push_body(blob)).status_code == 204
    (entries,) = st.deadletters().values()
    assert [e["step"] for e in entries] == ["object"]


def test_an_overwritten_object_is_read_at_its_notified_generation_only(orders_stack, client):
    """gcp-storage-emulator keeps one generation per name and answers a request for an
    older one with the latest (GCS answers 404 without versioning, or the old bytes with
    it). Either way the old notification must not write the new bytes: it is acknowledged
    without a read, and the new generation's own notification writes them, once."""
    st = orders_stack
    old = st.put(DAY + "good.ndjson", GOOD)
    stale = st.push_body(old, message_id="old")
    new = st.put(DAY + "good.ndjson", GOOD.replace("books", "films"))
    assert new.generation != old.generation
    main._reset()
    main._runtime()  # builds the storage client, to watch its requests
    urls: list[str] = []
    main.clients.storage()._http.hooks["response"].append(
        lambda r, *a, **k: urls.append(r.request.url))
    assert client.post("/", json=stale).status_code == 204
    assert st.bigquery.rows == []
    assert urls and all(f"generation={old.generation}" in u for u in urls)  # metadata only
    assert client.post("/", json=st.push_body(new, message_id="new")).status_code == 204
    assert sorted(r["category"] for r in st.bigquery.rows) == ["FILMS", "GARDEN", "TOYS"]


def test_the_requests_cloud_trace_context_is_on_its_log_lines(orders_stack, client, capsys,
                                                               monkeypatch):
    """Cloud Run passes the request's trace in ``traceparent``: the metrics line (object
    name included) carries ``logging.googleapis.com/trace``, so Cloud Trace shows it; with
    the spec's tracing switch off it does not."""
    st = orders_stack
    blob = st.put(DAY + "good.ndjson", GOOD)
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = {"traceparent": f"00-{trace}-00f067aa0ba902b7-01"}
    assert client.post("/", json=st.push_body(blob), headers=headers).status_code == 204
    logs = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    (line,) = [x for x in logs if x["message"] == "headwater request"]
    assert line["logging.googleapis.com/trace"].endswith(f"/traces/{trace}")
    assert line["logging.googleapis.com/spanId"] == "00f067aa0ba902b7"
    assert line["object"] == DAY + "good.ndjson"
    monkeypatch.setenv("HEADWATER_TRACING", "0")
    blob = st.put(DAY + "again.ndjson", GOOD)
    assert client.post("/", json=st.push_body(blob, message_id="2"),
                       headers=headers).status_code == 204
    logs = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    (line,) = [x for x in logs if x["message"] == "headwater request"]
    assert "logging.googleapis.com/trace" not in line
