"""Whole objects through the Lambda handler on a moto server: what real buckets hold
besides data files (folder placeholders, Spark markers, pictures, mislabelled gzip),
objects overwritten before they are read, versioned buckets, a pipeline without lookup
tables, and a failure in the middle of an object followed by its redelivery.

Every message here is the one S3 itself put on the queue.
"""

from __future__ import annotations

import json
import re
from urllib.parse import unquote_plus

import pytest
from test_aws_handler_e2e import DAY, GOOD, _emf, _failures, _object_messages

from runtimes.aws import handler

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("key", ["raw/orders/2024/05/", "raw/orders/"])
def test_folder_placeholder_is_acknowledged_and_counted_as_skipped(orders_stack, fake_context,
                                                                  capsys, key):
    st = orders_stack
    st.put(key, b"")  # the console's "Create folder", Spark's directory markers
    messages = _object_messages(st)
    assert [unquote_plus(json.loads(m["Body"])["Records"][0]["s3"]["object"]["key"])
            for m in messages] == [key]

    result = handler.handler(st.event(messages), fake_context(120_000))

    assert _failures(result) == []
    assert st.deadletters() == {} and st.delivered_objects() == []
    (emf,) = _emf(capsys.readouterr().out)
    assert (emf["SkippedObjects"], emf["UndecodableObjects"]) == (1, 0)


@pytest.mark.parametrize(("name", "body", "reason"), [
    ("_SUCCESS", b"", "cannot tell the format"),
    ("photo.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "cannot tell the format"),
    ("day.ndjson.gz", GOOD.encode(), "not gzip data"),
])
def test_object_that_can_never_be_decoded_is_dead_lettered_once_and_acknowledged(
        orders_stack, fake_context, capsys, name, body, reason):
    st = orders_stack
    st.put(DAY + name, body)
    messages = _object_messages(st)

    result = handler.handler(st.event(messages), fake_context(120_000))

    assert _failures(result) == []  # no loop until the DLQ
    assert st.delivered_objects() == []
    (entries,) = st.deadletters().values()
    (entry,) = entries
    assert (entry["step"], entry["source"]["key"]) == ("object", DAY + name)
    assert reason in entry["message"]
    (emf,) = _emf(capsys.readouterr().out)
    assert emf["UndecodableObjects"] == 1
    # a redelivery of the same notification does not dead-letter it again
    handler.handler(st.event(messages), fake_context(120_000))
    assert sum(len(v) for v in st.deadletters().values()) == 1


def test_object_overwritten_before_it_is_read_is_written_once_from_each_version(
        orders_stack, fake_context, capsys):
    """Two puts to one key before the function runs: the first notification's ETag no
    longer matches (S3 answers 412 to ``IfMatch``), so it is acknowledged as superseded;
    the second writes the new content. The first content is never written twice."""
    st = orders_stack
    st.put(DAY + "a.ndjson", GOOD)
    first = GOOD.replace('"order_id": 1,', '"order_id": 11,')
    st.put(DAY + "a.ndjson", first)  # overwritten before the function runs
    messages = _object_messages(st)
    assert len(messages) == 2

    result = handler.handler(st.event(messages), fake_context(120_000))

    assert _failures(result) == []
    ids = sorted(r["order_id"] for r in st.delivered())
    assert ids == ["11", "2", "3"]  # the current version, once
    (emf,) = _emf(capsys.readouterr().out)
    assert emf["Superseded"] == 1


def test_versioned_bucket_reads_exactly_the_version_each_notification_names(
        orders_stack, fake_context):
    """Real S3 puts ``versionId`` in the notification of a versioned bucket; moto leaves
    it out, so each message S3 produced gets the version id its PutObject returned."""
    st = orders_stack
    st.s3.put_bucket_versioning(Bucket=st.raw,
                                VersioningConfiguration={"Status": "Enabled"})
    put = [st.s3.put_object(Bucket=st.raw, Key=DAY + "a.ndjson", Body=body.encode())
           for body in (GOOD, GOOD.replace('"order_id": 1,', '"order_id": 11,'))]
    messages = _object_messages(st)
    assert len(messages) == 2
    for message, resp in zip(messages, put, strict=True):
        body = json.loads(message["Body"])
        body["Records"][0]["s3"]["object"]["versionId"] = resp["VersionId"]
        message["Body"] = json.dumps(body)
    assert put[0]["VersionId"] != put[1]["VersionId"]

    result = handler.handler(st.event(messages), fake_context(120_000))

    assert _failures(result) == []
    rows = st.delivered()
    assert sorted(r["order_id"] for r in rows) == ["1", "11", "2", "2", "3", "3"]
    # each version's rows carry their own ids: a warehouse keeps both versions apart
    assert len({r["_headwater_id"] for r in rows}) == 6


def test_pipeline_without_lookup_tables_runs_with_the_environment_the_component_renders(
        orders_stack, fake_context, monkeypatch, tmp_path):
    """The environment of a pipeline with no ``enrich`` step, as the component renders it
    (``HEADWATER_LOOKUP_TABLES={}``): every message succeeds."""
    from headwater.manifest import build_manifest

    st = orders_stack
    spec = st.spec.model_copy(update={
        "transforms": [s for s in st.spec.transforms if s.use != "enrich"]})
    manifest = tmp_path / "no-lookups.json"
    manifest.write_text(json.dumps(build_manifest(spec)), encoding="utf-8")
    monkeypatch.setenv("HEADWATER_MANIFEST", str(manifest))
    monkeypatch.setenv("HEADWATER_LOOKUP_TABLES", "{}")
    monkeypatch.setenv("HEADWATER_LOOKUP_KEYS", "{}")
    handler._reset()
    st.put(DAY + "a.ndjson", GOOD)

    result = handler.handler(st.event(_object_messages(st)), fake_context(120_000))

    assert _failures(result) == []
    rows = st.delivered()
    assert sorted(r["order_id"] for r in rows) == ["1", "2", "3"]
    assert not any("tier" in r for r in rows)


def test_failure_mid_object_then_redelivery_writes_every_row_once(orders_stack, fake_context,
                                                                   monkeypatch):
    """Firehose accepts the first batches, then goes down: the message fails. Its
    redelivery resumes after the checkpoint in the idempotency item, so no row is written
    twice and none is missing."""
    st = orders_stack
    monkeypatch.setenv("HEADWATER_MIN_REMAINING_MS", "0")
    lines = [json.dumps({"order_id": i, "user_id": "u1", "value": 1, "category": "x",
                         "ts": "2024-05-01T10:00:00Z"}) for i in range(1, 1301)]
    st.put(DAY + "big.ndjson", "\n".join(lines) + "\n")
    messages = _object_messages(st)
    rt = handler._runtime()
    sink = rt.engine.sink
    real = sink.client.put_record_batch
    calls = {"n": 0}

    def flaky(**kw):
        calls["n"] += 1
        if calls["n"] > 1:  # the first 500 records go in, then the stream is unavailable
            raise ConnectionError("firehose unreachable")
        return real(**kw)

    monkeypatch.setattr(sink.client, "put_record_batch", flaky)
    monkeypatch.setattr(rt.engine.retry, "sleep", lambda s: None)
    assert _failures(handler.handler(st.event(messages), fake_context(120_000))) == [
        messages[0]["MessageId"]]
    item = st.claim(st.raw, DAY + "big.ndjson")
    assert item["status"]["S"] == "FAILED"
    assert item["checkpoint"]["M"]["outputs"]["N"] == "500"

    monkeypatch.setattr(sink.client, "put_record_batch", real)
    assert _failures(handler.handler(st.event(messages), fake_context(120_000))) == []
    ids = [r["_headwater_id"] for r in st.delivered()]
    assert len(ids) == 1300 == len(set(ids))
    assert sorted(int(re.match(r".*-(\d+)-0$", i).group(1)) for i in ids) == list(range(1, 1301))
    assert st.claim(st.raw, DAY + "big.ndjson")["status"]["S"] == "DONE"


def test_existing_bucket_through_eventbridge_leaves_its_notifications_and_delivers(
        orders_stack, fake_context):
    """``source.notifications: eventbridge``: the bucket's notification configuration only
    has EventBridge delivery on (another system's queue configuration stays); the rule
    the component renders routes Object Created events under the prefix to the queue; the
    handler reads the EventBridge body shape."""
    from components.aws.pipeline import event_pattern

    st = orders_stack
    events = __import__("boto3").client("events", region_name="us-east-1")
    st.s3.put_bucket_notification_configuration(Bucket=st.raw, NotificationConfiguration={
        "EventBridgeConfiguration": {}})
    st.receive()  # drain what the fixture's own notification configuration produced
    events.put_rule(Name="orders-objects",
                    EventPattern=json.dumps(event_pattern(st.raw, st.spec.source.prefix)))
    events.put_targets(Rule="orders-objects", Targets=[{"Id": "queue", "Arn": st.queue_arn}])
    st.put(DAY + "a b+c.ndjson", GOOD)
    st.put("elsewhere/x.ndjson", GOOD)  # outside the prefix: the rule does not match
    messages = st.receive()
    assert [json.loads(m["Body"])["detail-type"] for m in messages] == ["Object Created"]

    result = handler.handler(st.event(messages), fake_context(120_000))

    assert _failures(result) == []
    assert sorted(r["order_id"] for r in st.delivered()) == ["1", "2", "3"]
