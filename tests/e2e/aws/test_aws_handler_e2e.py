"""The Lambda handler end to end on a moto server.

S3 itself puts the notifications on the queue (moto delivers them on ``PutObject``); the
test receives those SQS messages, builds the event Lambda's SQS event source would pass,
calls the handler, and reads what Firehose delivered into the curated bucket.

In the emulator Firehose writes each ``PutRecordBatch`` as one S3 object holding the
records' bytes as sent (JSON lines); the Parquet conversion of the real service is not
emulated, so the assertions are on those JSON lines.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote_plus

import orjson
import pytest
from e2e.samples import BAD, CSV, DAY, GOOD, GZ, WRITTEN

from runtimes.aws import clients, handler

pytestmark = pytest.mark.e2e


def _by_id(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records sorted by order id, without their ``_headwater_id`` (checked here: present,
    well-formed and distinct)."""
    ids = [r.pop("_headwater_id") for r in records]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{20}-\d+-\d+", i) for i in ids), ids
    return sorted(records, key=lambda r: int(r["order_id"]))


def _released(item: dict[str, Any] | None) -> bool:
    """A claim ended by a failed attempt: a redelivery can take the object at once."""
    return (item is not None and item["status"]["S"] == "FAILED"
            and item["lease_until"]["N"] == "0" and "lease" not in item)


def _failures(result: dict[str, Any]) -> list[str]:
    return [f["itemIdentifier"] for f in result["batchItemFailures"]]


def _emf(out: str) -> list[dict[str, Any]]:
    return [d for d in map(json.loads, filter(None, out.splitlines())) if "_aws" in d]


def _object_messages(stack) -> list[dict[str, Any]]:
    return [m for m in stack.receive() if "s3:TestEvent" not in m["Body"]]


def test_sqs_s3_notifications_write_transformed_enriched_records_and_deadletter_bad_ones(
        orders_stack, fake_context, capsys):
    st = orders_stack
    st.put(DAY + "good.ndjson", GOOD)
    st.put_gz(DAY + "batch two+more.ndjson.gz", GZ)  # key arrives as batch+two%2Bmore...
    st.put(DAY + "orders.csv", CSV)
    st.put(DAY + "bad.ndjson", BAD)
    st.put("elsewhere/ignored.ndjson", GOOD)  # outside the prefix: S3 sends nothing
    messages = st.receive()
    bodies = [json.loads(m["Body"]) for m in messages]
    assert bodies[0]["Event"] == "s3:TestEvent"  # sent by S3 when the notification was set
    keys = [b["Records"][0]["s3"]["object"]["key"] for b in bodies[1:]]
    assert "batch+two%2Bmore.ndjson.gz" in keys[1]  # URL-encoded, '+' for the space
    assert [unquote_plus(k) for k in keys] == [
        DAY + "good.ndjson", DAY + "batch two+more.ndjson.gz", DAY + "orders.csv",
        DAY + "bad.ndjson"]

    result = handler.handler(st.event(messages), fake_context(120_000))

    assert _failures(result) == []
    assert _by_id(st.delivered()) == WRITTEN
    dead = st.deadletters()
    assert len(dead) == 1
    (name, entries), = dead.items()
    assert name.startswith("deadletter/orders/dt=") and name.endswith(".ndjson")
    summary = [(e["pipeline"], e["source"], e["line"], e["step"], e["error_type"]) for e in entries]
    etag = st.s3.head_object(Bucket=st.raw, Key=DAY + "bad.ndjson")["ETag"].strip('"')
    # the version read: the version id in a versioned bucket, else the ETag it was read by
    source = {"bucket": st.raw, "key": DAY + "bad.ndjson", "version": etag}
    assert summary == [
        ("orders", source, 2, "decode", "JSONDecodeError"),
        ("orders", source, 3, "1:cents", "ValueError"),
        ("orders", source, 4, "3:enrich", "LookupError"),
    ]
    assert entries[0]["raw"] == '{"order_id": 8, "user_id": "u1", "value": 3'
    assert "'abc'" in entries[1]["message"]
    assert entries[2]["record"]["user_id"] == "u404"
    head = st.s3.head_object(Bucket=st.deadletter, Key=name)
    assert head["ServerSideEncryption"] == "AES256"

    (emf,) = _emf(capsys.readouterr().out)
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "headwater"
    assert emf["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["project", "stack",
                                                                  "pipeline"]]
    assert emf["pipeline"] == "orders" and emf["project"] and emf["stack"]
    # moto's notifications carry the object's eventTime: the age is a small non-negative
    # number of seconds, and every value the directive names is in the line
    assert 0 <= emf["ObjectAgeSeconds"] < 600
    assert emf["SinkSeconds"] >= 0
    assert all(m["Name"] in emf for m in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"])
    assert {k: emf[k] for k in ("Received", "Written", "DeadLettered", "Dropped", "Objects",
                                "FailedMessages")} == {
        "Received": 10, "Written": 7, "DeadLettered": 3, "Dropped": 0, "Objects": 4,
        "FailedMessages": 0}
    assert st.claim(st.raw, DAY + "good.ndjson")["status"]["S"] == "DONE"


def test_redelivered_message_writes_nothing_twice(orders_stack, fake_context, capsys):
    st = orders_stack
    st.put(DAY + "good.ndjson", GOOD)
    event = st.event(_object_messages(st))

    assert _failures(handler.handler(event, fake_context(120_000))) == []
    first = st.delivered_objects()
    assert len(st.delivered()) == 3
    assert _failures(handler.handler(event, fake_context(120_000))) == []

    assert st.delivered_objects() == first
    assert len(st.delivered()) == 3
    emfs = _emf(capsys.readouterr().out)
    assert [(e["Written"], e["Duplicates"]) for e in emfs] == [(3, 0), (0, 1)]


class _FailingFirstCall:
    """A thin proxy on the real Firehose client: on the first ``PutRecordBatch`` it keeps
    back the entries ``fail`` picks, forwards the others to moto, and answers as Firehose
    does on partial failure (``FailedPutCount``, an ``ErrorCode`` per failed entry). moto
    itself never fails entries, hence the proxy."""

    def __init__(self, real: Any, fail: set[int]) -> None:
        self.real = real
        self.fail = fail
        self.calls: list[list[dict[str, Any]]] = []

    def put_record_batch(self, DeliveryStreamName: str, Records: list[dict[str, bytes]]):
        self.calls.append([orjson.loads(r["Data"]) for r in Records])
        if len(self.calls) > 1:
            return self.real.put_record_batch(DeliveryStreamName=DeliveryStreamName,
                                              Records=Records)
        keep = [r for i, r in enumerate(Records) if i not in self.fail]
        sent = iter(self.real.put_record_batch(DeliveryStreamName=DeliveryStreamName,
                                               Records=keep)["RequestResponses"])
        answers = [{"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down."}
                   if i in self.fail else next(sent) for i in range(len(Records))]
        return {"FailedPutCount": len(self.fail), "Encrypted": False, "RequestResponses": answers}


def test_firehose_failed_entries_are_retried_alone(orders_stack, fake_context, monkeypatch):
    st = orders_stack
    real_client = clients.client
    proxies: list[_FailingFirstCall] = []

    def client(service: str) -> Any:
        c = real_client(service)
        if service != "firehose":
            return c
        if not proxies:
            proxies.append(_FailingFirstCall(c, fail={0, 2}))
        return proxies[0]

    monkeypatch.setattr(clients, "client", client)
    st.put(DAY + "good.ndjson", GOOD)

    assert _failures(handler.handler(st.event(_object_messages(st)), fake_context(120_000))) == []

    first, second = proxies[0].calls
    assert [r["order_id"] for r in first] == ["1", "2", "3"]
    assert second == [first[0], first[2]]
    assert _by_id(st.delivered()) == _by_id(first)  # each record exactly once
    assert st.deadletters() == {}


def test_get_object_failure_reports_only_that_message(orders_stack, fake_context):
    st = orders_stack
    st.put(DAY + "a.ndjson", GOOD)
    st.put(DAY + "b.ndjson", GZ)
    st.put(DAY + "c.ndjson", CSV.replace(",", "|"))
    messages = _object_messages(st)
    st.s3.delete_object(Bucket=st.raw, Key=DAY + "b.ndjson")  # get_object -> NoSuchKey

    result = handler.handler(st.event(messages), fake_context(120_000))

    assert _failures(result) == [messages[1]["MessageId"]]
    assert sorted(r["order_id"] for r in st.delivered()) == ["1", "2", "3"]
    # c.ndjson is not JSON at all: its line goes to the dead-letter, the message succeeds
    (entries,) = st.deadletters().values()
    assert [(e["source"]["key"], e["error_type"]) for e in entries] == [
        (DAY + "c.ndjson", "JSONDecodeError"), (DAY + "c.ndjson", "JSONDecodeError")]
    # the failed object's claim was released, so the redelivery can take it
    items = st.ddb.scan(TableName=st.idempotency)["Items"]
    assert sorted((i["pk"]["S"].split("#")[0], i["status"]["S"]) for i in items) == [
        (f"{st.raw}/{DAY}a.ndjson", "DONE"), (f"{st.raw}/{DAY}b.ndjson", "FAILED"),
        (f"{st.raw}/{DAY}c.ndjson", "DONE")]


def test_s3_test_event_is_acknowledged_without_work(orders_stack, fake_context):
    st = orders_stack
    messages = st.receive()
    assert [json.loads(m["Body"])["Event"] for m in messages] == ["s3:TestEvent"]

    assert _failures(handler.handler(st.event(messages), fake_context(120_000))) == []
    assert st.delivered_objects() == []
    assert st.deadletters() == {}


def test_low_remaining_time_reports_the_rest_as_failures_without_partial_writes(
        orders_stack, fake_context):
    st = orders_stack
    st.put(DAY + "a.ndjson", GOOD)
    st.put(DAY + "b.ndjson", GZ)
    st.put(DAY + "c.csv", CSV)
    messages = _object_messages(st)

    # enough time for the first object only
    result = handler.handler(st.event(messages), fake_context(60_000, 9_000))

    assert _failures(result) == [m["MessageId"] for m in messages[1:]]
    assert sorted(r["order_id"] for r in st.delivered()) == ["1", "2", "3"]
    assert st.claim(st.raw, DAY + "b.ndjson") is None
    assert st.claim(st.raw, DAY + "c.csv") is None

    # the redelivery finishes the job, and the first object is not written again
    result = handler.handler(st.event(messages), fake_context(60_000))
    assert _failures(result) == []
    assert sorted(r["order_id"] for r in st.delivered()) == ["1", "2", "3", "4", "5", "6"]


def test_no_time_at_all_fails_every_message_and_writes_nothing(orders_stack, fake_context):
    st = orders_stack
    st.put(DAY + "a.ndjson", GOOD)
    messages = _object_messages(st)

    result = handler.handler(st.event(messages), fake_context(5_000))

    assert _failures(result) == [messages[0]["MessageId"]]
    assert st.delivered_objects() == []
    assert st.ddb.scan(TableName=st.idempotency)["Items"] == []


def test_deadletter_write_failure_fails_the_message_and_releases_the_claim(
        orders_stack, fake_context):
    st = orders_stack
    st.s3.delete_bucket(Bucket=st.deadletter)
    st.put(DAY + "bad.ndjson", BAD)
    messages = _object_messages(st)

    result = handler.handler(st.event(messages), fake_context(120_000))

    assert _failures(result) == [messages[0]["MessageId"]]
    assert _released(st.claim(st.raw, DAY + "bad.ndjson"))


def test_message_with_a_live_claim_elsewhere_is_retried_later(orders_stack, fake_context):
    st = orders_stack
    st.put(DAY + "a.ndjson", GOOD)
    messages = _object_messages(st)
    from runtimes.aws.idempotency import GO, Idempotency

    idem = Idempotency(st.ddb, st.idempotency)
    etag = st.s3.head_object(Bucket=st.raw, Key=DAY + "a.ndjson")["ETag"].strip('"')
    assert idem.claim(Idempotency.key(st.raw, DAY + "a.ndjson", etag), 600)[0] == GO

    result = handler.handler(st.event(messages), fake_context(120_000))

    assert _failures(result) == [messages[0]["MessageId"]]
    assert st.delivered_objects() == []


def test_malformed_body_fails_that_message_only(orders_stack, fake_context):
    st = orders_stack
    st.put(DAY + "a.ndjson", GOOD)
    messages = _object_messages(st)
    junk = dict(messages[0], MessageId="junk-1", Body='{"hello": "world"}')

    result = handler.handler(st.event([junk, *messages]), fake_context(120_000))

    assert _failures(result) == ["junk-1"]
    assert len(st.delivered()) == 3


def test_malformed_event_raises_value_error_naming_the_expected_shape(orders_stack,
                                                                      fake_context):
    with pytest.raises(ValueError, match="expected an SQS event"):
        handler.handler({"detail": {}}, fake_context(120_000))


def test_expired_claim_of_a_dead_invocation_is_taken_over(orders_stack, fake_context):
    st = orders_stack
    st.put(DAY + "a.ndjson", GOOD)
    messages = _object_messages(st)
    import time

    from runtimes.aws.idempotency import GO, Idempotency

    etag = st.s3.head_object(Bucket=st.raw, Key=DAY + "a.ndjson")["ETag"].strip('"')
    pk = Idempotency.key(st.raw, DAY + "a.ndjson", etag)
    earlier = Idempotency(st.ddb, st.idempotency, clock=lambda: time.time() - 1000)
    assert earlier.claim(pk, 60)[0] == GO  # its lease ended 940 s ago

    result = handler.handler(st.event(messages), fake_context(120_000))

    assert _failures(result) == []
    assert len(st.delivered()) == 3
    assert st.claim(st.raw, DAY + "a.ndjson")["status"]["S"] == "DONE"


def test_unreachable_lookup_table_fails_the_message_without_dead_lettering(
        orders_stack, fake_context, monkeypatch):
    st = orders_stack
    monkeypatch.setenv("HEADWATER_LOOKUP_TABLES", json.dumps({"users": "no-such-table"}))
    st.put(DAY + "a.ndjson", GOOD)
    messages = _object_messages(st)

    result = handler.handler(st.event(messages), fake_context(120_000))

    assert _failures(result) == [messages[0]["MessageId"]]  # Retryable: SQS redelivers
    assert st.delivered_objects() == []
    assert st.deadletters() == {}
    assert _released(st.claim(st.raw, DAY + "a.ndjson"))


def test_engine_and_clients_are_built_once_per_container(orders_stack, fake_context):
    st = orders_stack
    st.put(DAY + "a.ndjson", GOOD)
    event = st.event(_object_messages(st))
    handler.handler(event, fake_context(120_000))
    engine, s3 = handler._state[0].engine, clients.client("s3")

    handler.handler(event, fake_context(120_000))

    assert handler._state[0].engine is engine and clients.client("s3") is s3
    assert clients.client("s3").meta.config.retries["mode"] == "standard"
