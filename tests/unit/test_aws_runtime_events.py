"""Parsing of the SQS events Lambda passes the AWS handler, on payloads kept as files."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from runtimes.aws.events import ObjectRef, parse_body, parse_event

EVENTS = Path(__file__).resolve().parents[1] / "events" / "aws"


@pytest.fixture
def load():
    def _load(name: str) -> dict:
        return json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return _load


def test_sqs_s3_event_gives_messages_in_order_with_attributes(load):
    messages = parse_event(load("sqs_s3_object_created.json"))
    assert [m.message_id for m in messages] == ["059f36b4-87a3-44ab-83d2-661975830a7d",
                                                "2e1424d4-f796-459a-8184-9c92662be6da"]
    assert [m.receive_count for m in messages] == [1, 2]
    assert messages[0].source_arn == "arn:aws:sqs:eu-west-1:123456789012:headwater-orders"
    assert messages[0].region == "eu-west-1"


def test_s3_body_with_several_records_decodes_plus_and_percent_escapes(load):
    first = parse_event(load("sqs_s3_object_created.json"))[0]
    note = parse_body(first.body)
    assert not note.test
    assert note.objects == (
        ObjectRef("headwater-raw-3f9a", "raw/orders/2024/05/01/good.ndjson", 412,
                  "0c2a6a6f1b8f2c1a5f3d3e9d1c4b2a10", "0066322FA1B2C3D4E5"),
        ObjectRef("headwater-raw-3f9a", "raw/orders/2024/05/01/batch two+moreé.ndjson.gz", 178,
                  "9b2cf535f27731c974343645a3985328", "0066322FA1B2C3D4F0"),
    )
    assert all(o.created for o in note.objects)
    assert {o.event_time for o in note.objects} == {"2024-05-01T12:00:03.112Z"}


def test_s3_test_event_is_recognised(load):
    (msg,) = parse_event(load("sqs_s3_test_event.json"))
    note = parse_body(msg.body)
    assert note.test and note.objects == ()


def test_sns_wrapped_s3_notification_is_unwrapped(load):
    (msg,) = parse_event(load("sqs_sns_s3_object_created.json"))
    (obj,) = parse_body(msg.body).objects
    assert (obj.bucket, obj.key, obj.size) == ("headwater-raw-3f9a",
                                               "raw/orders/2024/05/02/late order.ndjson", 120)


def test_removed_event_is_not_a_create(load):
    event = load("sqs_s3_object_created.json")
    body = json.loads(event["Records"][1]["body"])
    body["Records"][0]["eventName"] = "ObjectRemoved:Delete"
    (obj,) = parse_body(json.dumps(body)).objects
    assert not obj.created


@pytest.mark.parametrize("event, expected", [
    ({}, "expected an SQS event"),
    ([], "expected an SQS event"),
    ({"Records": "x"}, "expected an SQS event"),
    ({"Records": [1]}, r"Records\[0\]: expected an SQS message object"),
])
def test_malformed_event_is_value_error_listing_the_expected_shape(event, expected):
    with pytest.raises(ValueError, match=expected) as info:
        parse_event(event)
    assert "messageId" in str(info.value) or "SQS message" in str(info.value)


def test_event_from_another_source_names_the_field(load):
    event = load("sqs_s3_test_event.json")
    bad = copy.deepcopy(event)
    bad["Records"][0]["eventSource"] = "aws:kinesis"
    del bad["Records"][0]["body"]
    with pytest.raises(ValueError) as info:
        parse_event(bad)
    text = str(info.value)
    assert "Records[0]" in text and "'body'" in text and "'aws:kinesis'" in text
    assert "expected an SQS event" in text


@pytest.mark.parametrize("body, expected", [
    ("not json", "not JSON"),
    ("[1, 2]", "message body is list"),
    ('{"hello": "world"}', r"no 'Records' list \(keys: hello\)"),
    ('{"Records": []}', "no 'Records' list"),
    ('{"Records": [{"eventSource": "aws:s3", "s3": {"bucket": {}}}]}',
     r"Records\[0\]: 's3.bucket.name' and 's3.object.key'"),
    ('{"Records": [{"eventSource": "aws:sqs"}]}', r"'eventSource' is 'aws:sqs'"),
    ('{"Type": "Notification", "Message": "{"}', "SNS Message is not JSON"),
])
def test_malformed_body_is_value_error_naming_the_problem(body, expected):
    with pytest.raises(ValueError, match=expected) as info:
        parse_body(body)
    assert "expected an S3 notification" in str(info.value)


def test_eventbridge_s3_object_created_through_sqs(load):
    """The S3 User Guide's EventBridge 'Object Created' event, delivered by a rule to SQS."""
    (msg,) = parse_event(load("sqs_eventbridge_s3_object_created.json"))
    note = parse_body(msg.body)
    (ref,) = note.objects
    assert not note.test
    assert (ref.bucket, ref.key, ref.size) == ("amzn-s3-demo-bucket1", "example-key", 5)
    assert ref.etag == "b1946ac92492d2347c6235b4d2611184"
    assert ref.version_id == "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e"
    assert ref.created and ref.event_name == "ObjectCreated:PutObject"
    assert ref.event_time == "2021-11-12T00:00:00Z"


def test_eventbridge_key_is_taken_as_it_is_not_url_decoded(load):
    body = json.loads(load("sqs_eventbridge_s3_object_created.json")["Records"][0]["body"])
    body["detail"]["object"]["key"] = "raw/orders/a+b c%2B.ndjson"
    (ref,) = parse_body(json.dumps(body)).objects
    assert ref.key == "raw/orders/a+b c%2B.ndjson"


def test_eventbridge_object_deleted_is_not_a_creation_and_bad_detail_names_the_shape(load):
    body = json.loads(load("sqs_eventbridge_s3_object_created.json")["Records"][0]["body"])
    body["detail-type"] = "Object Deleted"
    (ref,) = parse_body(json.dumps(body)).objects
    assert not ref.created
    body["detail"] = {"bucket": {}}
    with pytest.raises(ValueError, match="detail.bucket.name"):
        parse_body(json.dumps(body))


def test_receive_count_that_json_reads_as_infinity_counts_as_one():
    from runtimes.aws.events import SqsMessage

    assert SqsMessage("m", "r", "{}", {"ApproximateReceiveCount": float("inf")}).receive_count == 1
