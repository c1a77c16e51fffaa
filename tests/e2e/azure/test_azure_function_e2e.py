"""The Azure function end to end on Azurite (Blob and Table services).

Blobs are uploaded with azure-storage-blob, lookup rows live in Azurite's Table service,
and the real ``function_app.py`` is called through azure-functions v2 objects: its
``app``'s function, given ``azure.functions.EventHubEvent`` objects whose bodies are the
exact Event Grid BlobCreated payloads from Microsoft's docs (tests/events/azure), filled
with the uploaded blobs' values, in both the Event Grid and the CloudEvents schema.

The processed Event Hub is a stand-in at the client boundary (``StandInHub`` in
conftest.py: ``EventHubProducerClient``'s ``create_batch``/``send_batch`` with real
``EventDataBatch``es and the hub's size limit): Event Hubs and Data Explorer have no
emulator that runs here.
"""

from __future__ import annotations

import gzip
from typing import Any

import orjson
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.eventhub.exceptions import EventHubError
from azure_harness import EVENTS, FunctionContext, hub_events, indexed_function
from e2e.samples import BAD, CSV, DAY, GOOD, GZ, WRITTEN

from runtimes.azure import function_app, handler

pytestmark = pytest.mark.e2e
# what the worker does once when it loads function_app.py (indexing may run only once)
FUNCTION = indexed_function()


def _records(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events' records by order id, without the engine's stable id."""
    return sorted(({k: v for k, v in e.items() if k != "_headwater_id"} for e in events),
                  key=lambda r: int(r["order_id"]))


def _invoke(bodies: list[bytes], retry_count: int = 0, max_retry_count: int = 5) -> None:
    """What the Functions host does: call the app's function with the trigger's events."""
    FUNCTION.get_user_function()(hub_events(bodies), FunctionContext(retry_count, max_retry_count))


def _logs(out: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in out.splitlines() if line.startswith("{")]


def _metrics(out: str) -> dict[str, Any]:
    (line,) = [x for x in _logs(out) if x["message"] == "headwater metrics"]
    return line["metrics"]


def test_trigger_is_event_hub_many_with_identity_connection_and_exponential_retry():
    fn = FUNCTION
    (binding,) = fn.get_bindings_dict()["bindings"]
    assert binding["type"] == "eventHubTrigger" and str(binding["cardinality"].value) == "many"
    assert binding["connection"] == "EVENTHUB"  # EVENTHUB__fullyQualifiedNamespace: identity
    assert binding["eventHubName"] == "%HEADWATER_NOTIFICATIONS_HUB%"
    assert binding["consumerGroup"] == "%HEADWATER_CONSUMER_GROUP%"
    retry = fn.get_setting("retry_policy").get_dict_repr()
    assert retry["strategy"] == "exponential_backoff"
    assert retry["max_retry_count"] == str(function_app.MAX_RETRIES)


def test_blob_created_in_both_schemas_sends_transformed_enriched_events_and_deadletters_bad_records(
        orders_stack, capsys):
    st = orders_stack
    good = st.put(DAY + "good.ndjson", GOOD)
    gz = st.put(DAY + "batch two+more.ndjson.gz", gzip.compress(GZ.encode(), mtime=0))
    csv = st.put(DAY + "orders.csv", CSV)
    bad = st.put(DAY + "bad.ndjson", BAD)
    capsys.readouterr()

    _invoke([st.notification(good, "eventgrid"), st.notification(gz, "cloudevents"),
             st.notification(csv, "eventgrid"), st.notification(bad, "cloudevents")])

    assert _records(st.hub.events) == WRITTEN
    dead = st.deadletters()
    assert len(dead) == 1
    ((name, entries),) = dead.items()
    assert name.startswith("deadletter/orders/dt=") and name.endswith(".ndjson")
    source = {"bucket": "raw", "key": DAY + "bad.ndjson", "version": bad["etag"]}
    assert [(e["pipeline"], e["source"], e["line"], e["step"], e["error_type"])
            for e in entries] == [
        ("orders", source, 2, "decode", "JSONDecodeError"),
        ("orders", source, 3, "1:cents", "ValueError"),
        ("orders", source, 4, "3:enrich", "LookupError"),
    ]
    assert entries[0]["raw"] == '{"order_id": 8, "user_id": "u1", "value": 3'
    assert entries[2]["record"]["user_id"] == "u404"
    out = capsys.readouterr().out
    m = _metrics(out)
    assert {k: m[k] for k in ("Received", "Written", "DeadLettered", "Objects", "Parked")} == {
        "Received": 10, "Written": 7, "DeadLettered": 3, "Objects": 4, "Parked": 0}
    assert 0 <= m["ObjectAgeSeconds"] < 600 and m["SinkSeconds"] >= 0  # from eventTime
    (line,) = [x for x in _logs(out) if x["message"] == "headwater metrics"]
    assert line["pipeline"] == "orders" and line["project"] and line["stack"]
    assert st.parked() == {}


def test_records_carry_a_stable_headwater_id_from_container_blob_and_etag(orders_stack):
    st = orders_stack
    good = st.put(DAY + "good.ndjson", GOOD)
    _invoke([st.notification(good)])
    ids = [e["_headwater_id"] for e in st.hub.events]
    assert len(set(ids)) == 3 and all(isinstance(i, str) and i for i in ids)
    # the same version processed again (its claim gone) gets the same ids
    claim = st.claim(good)
    st.tables.get_table_client(st.claims).delete_entity(claim["PartitionKey"], claim["RowKey"])
    _invoke([st.notification(good)])
    assert [e["_headwater_id"] for e in st.hub.events[3:]] == ids
    # a new version of the blob gets new ids
    newer = st.put(DAY + "good.ndjson", GOOD)
    _invoke([st.notification(newer)])
    assert not set(e["_headwater_id"] for e in st.hub.events[6:]) & set(ids)


def test_lookups_are_batched_per_object_and_cached_per_worker(orders_stack):
    st = orders_stack
    first = st.put(DAY + "a.ndjson", GOOD)  # users u1, u2
    _invoke([st.notification(first)])
    lookup = handler._state[0].engine.ctx.lookup
    assert lookup.calls == 1
    second = st.put(DAY + "b.ndjson", GOOD.replace('"order_id": ', '"order_id": 1'))
    _invoke([st.notification(second)])
    assert lookup.calls == 1  # u1 and u2 come from the worker's cache
    # the row comes from the 'users' partition, not another table sharing RowKey u1
    assert {e["tier"] for e in st.hub.events if e["user_id"] == "u1"} == {"gold"}


def test_batches_split_at_the_hub_size_limit_and_every_record_is_sent_once(orders_stack):
    st = orders_stack
    st.hub.max_bytes = 700
    lines = [f'{{"order_id": {n}, "user_id": "u{1 + n % 3}", "value": {n}.5, "category": "c", '
             f'"ts": "2024-05-01T10:00:00Z"}}' for n in range(1, 41)]
    blob = st.put(DAY + "many.ndjson", "\n".join(lines) + "\n")
    _invoke([st.notification(blob)])
    assert len(st.hub.sent) > 5
    assert all(sum(len(orjson.dumps(e)) for e in batch) < 700 for batch in st.hub.sent)
    assert [int(r["order_id"]) for r in _records(st.hub.events)] == list(range(1, 41))


def test_a_record_larger_than_a_whole_batch_is_dead_lettered_not_sent(orders_stack):
    st = orders_stack
    st.hub.max_bytes = 700
    huge = ('{"order_id": 99, "user_id": "u1", "value": 1, "category": "' + "x" * 900
            + '", "ts": "2024-05-01T10:00:00Z"}')
    blob = st.put(DAY + "huge.ndjson", GOOD + huge + "\n")
    _invoke([st.notification(blob)])
    assert [r["order_id"] for r in _records(st.hub.events)] == ["1", "2", "3"]
    ((_, entries),) = st.deadletters().items()
    assert [(e["step"], e["error_type"], e["record"]["order_id"]) for e in entries] == [
        ("sink", "RecordTooLarge", "99")]


def test_a_failed_send_after_earlier_batches_resends_only_its_own_records(orders_stack,
                                                                          monkeypatch):
    st = orders_stack
    st.hub.max_bytes = 700
    sends = {"n": 0}
    real = st.hub.send_batch

    def second_fails_once(batch, **kw):
        sends["n"] += 1
        if sends["n"] == 2:
            raise EventHubError("injected: the hub refused the second batch")
        return real(batch, **kw)

    monkeypatch.setattr(st.hub, "send_batch", second_fails_once)
    lines = [f'{{"order_id": {n}, "user_id": "u1", "value": 1, "category": "c", '
             f'"ts": "2024-05-01T10:00:00Z"}}' for n in range(1, 21)]
    blob = st.put(DAY + "twenty.ndjson", "\n".join(lines) + "\n")
    _invoke([st.notification(blob)])
    assert sorted(int(e["order_id"]) for e in st.hub.events) == list(range(1, 21))
    assert st.deadletters() == {}


def test_same_notification_twice_sends_nothing_twice(orders_stack, capsys):
    st = orders_stack
    good = st.put(DAY + "good.ndjson", GOOD)
    body = st.notification(good)
    _invoke([body, st.notification(good, "cloudevents")])  # twice in one invocation
    _invoke([body])  # and again later (Event Grid delivers at least once)
    assert len(st.hub.events) == 3
    runs = [x["metrics"] for x in _logs(capsys.readouterr().out)
            if x["message"] == "headwater metrics"]
    assert [(m["Objects"], m["Duplicates"]) for m in runs] == [(1, 1), (0, 1)]


def test_overwritten_blob_is_read_by_etag_so_its_old_event_sends_nothing(orders_stack, capsys):
    st = orders_stack
    old = st.put(DAY + "good.ndjson", GOOD)
    new = st.put(DAY + "good.ndjson", GOOD.replace("19.99", "29.99"))
    assert old["etag"] != new["etag"]
    capsys.readouterr()
    _invoke([st.notification(old), st.notification(new)])
    assert [r["value_cents"] for r in _records(st.hub.events)] == [2999, 123450, 7]
    assert _metrics(capsys.readouterr().out)["Superseded"] == 1


def test_unreadable_blob_parks_its_notification_for_replay_and_says_so(orders_stack, capsys):
    st = orders_stack
    gone = st.put(DAY + "gone.ndjson", GOOD)
    body = st.notification(gone, "cloudevents")
    st.blob.get_blob_client(st.raw, DAY + "gone.ndjson").delete_blob()
    kept = st.put(DAY + "kept.ndjson", GOOD)
    capsys.readouterr()
    _invoke([body, st.notification(kept)])  # no exception: the checkpoint may move on
    assert len(st.hub.events) == 3  # the other blob of the batch went through
    ((name, doc),) = st.parked().items()
    assert name.startswith("deadletter/notifications/orders/dt=")
    assert doc["body"].encode() == body and doc["error_type"] == "ResourceNotFoundError"
    assert doc["blob"]["name"] == DAY + "gone.ndjson"
    (line,) = [x for x in _logs(capsys.readouterr().out) if "parked" in x["message"]]
    assert line["level"] == "ERROR" and line["deadletter_blob"] == name and line["traceback"]


def test_transient_failure_raises_while_retries_remain_then_parks_on_the_last(orders_stack):
    st = orders_stack
    st.hub.fail_sends = 10_000  # the processed hub is down
    good = st.put(DAY + "good.ndjson", GOOD)
    body = st.notification(good)
    handler._runtime().engine.retry.sleep = lambda _s: None  # no real backoff in the test
    with pytest.raises(Exception, match="sink failed"):
        _invoke([body], retry_count=0, max_retry_count=5)
    assert st.parked() == {} and st.hub.events == []
    _invoke([body], retry_count=5, max_retry_count=5)  # the last attempt: park, do not raise
    ((_, doc),) = st.parked().items()
    assert doc["error_type"] == "SinkUnavailable" and doc["body"].encode() == body
    st.hub.fail_sends = 0  # replay: the parked body, sent again, is processed once
    _invoke([doc["body"].encode()])
    assert len(st.hub.events) == 3


def test_parking_failure_raises_and_logs_that_the_notification_may_be_lost(orders_stack,
                                                                           capsys):
    st = orders_stack
    st.blob.delete_container(st.deadletter)
    with pytest.raises(ResourceNotFoundError):  # the container is gone
        _invoke([b"not json at all"])
    (line,) = [x for x in _logs(capsys.readouterr().out) if x["level"] == "CRITICAL"]
    assert "lost" in line["message"]


def test_malformed_body_is_parked_and_the_rest_of_the_batch_goes_on(orders_stack):
    st = orders_stack
    good = st.put(DAY + "good.ndjson", GOOD)
    _invoke([b'{"hello": "world"}', st.notification(good)])
    assert len(st.hub.events) == 3
    ((_, doc),) = st.parked().items()
    assert doc["reason"] == "not an Event Grid notification"
    assert "eventType" in doc["error"] and doc["body"] == '{"hello": "world"}'


def test_subscription_validation_event_is_acknowledged_without_work(orders_stack, capsys):
    st = orders_stack
    _invoke([(EVENTS / "eventgrid_subscription_validation.json").read_bytes()])
    assert st.hub.events == [] and st.parked() == {} and st.deadletters() == {}
    assert _metrics(capsys.readouterr().out)["Ignored"] == 1


def test_folder_placeholder_sends_nothing_and_parks_nothing(orders_stack, capsys):
    st = orders_stack
    folder = st.put(DAY + "subfolder/", b"")
    _invoke([st.notification(folder)])
    assert st.hub.events == [] and st.parked() == {} and st.deadletters() == {}
    assert _metrics(capsys.readouterr().out)["SkippedObjects"] == 1


def test_poison_blob_is_dead_lettered_once_and_acknowledged_on_the_first_attempt(orders_stack):
    st = orders_stack
    poison = st.put(DAY + "picture.png", b"\x89PNG\r\n\x1a\n not records")
    good = st.put(DAY + "good.ndjson", GOOD)
    _invoke([st.notification(poison), st.notification(good)])  # retries left: still no raise
    assert len(st.hub.events) == 3 and st.parked() == {}
    ((_, entries),) = st.deadletters().items()
    assert [(e["step"], e["source"]["key"]) for e in entries] == [("object", DAY + "picture.png")]


def test_blobs_outside_the_raw_container_or_source_prefix_are_ignored(orders_stack):
    st = orders_stack
    outside = st.put("elsewhere/x.ndjson", GOOD)
    st.blob.get_blob_client(st.deadletter, DAY + "loop.ndjson").upload_blob(GOOD.encode())
    looped = {"name": DAY + "loop.ndjson", "etag": outside["etag"], "size": 1}
    _invoke([st.notification(outside), st.notification(looped, container=st.deadletter)])
    assert st.hub.events == [] and st.parked() == {}
