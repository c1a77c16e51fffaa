"""Parsing what reaches the GCP function: the Pub/Sub push of a GCS notification (sample
in tests/events/gcp/, its source noted in the file) and its CloudEvent forms."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtimes.gcp import events

PUSH = json.loads((Path(__file__).resolve().parents[1] / "events" / "gcp" /
                   "pubsub_push_gcs_finalize.json").read_text(encoding="utf-8"))


def test_push_of_a_finalize_notification_names_the_object_generation():
    note = events.parse_request({"Content-Type": "application/json"}, json.dumps(PUSH))
    assert note.finalized and note.message_id == "2070443601311540"
    assert note.object == events.ObjectRef("headwater-raw", "raw/orders/2024-05-01.ndjson",
                                           "1714557600000000", 1024)
    assert note.delivery_attempt == 2


def test_binary_cloud_event_of_a_pubsub_message_is_the_same_notification():
    headers = {"ce-type": events.PUBSUB_EVENT, "ce-id": "e1", "ce-specversion": "1.0"}
    assert events.parse_request(headers, json.dumps(PUSH)).object.generation == "1714557600000000"


def test_storage_cloud_event_carries_the_object_resource():
    data = {"bucket": "b", "name": "raw/orders/x.csv", "generation": "7"}
    body = {"type": events.STORAGE_FINALIZED, "id": "e2", "specversion": "1.0", "data": data}
    note = events.parse_request({"Content-Type": "application/cloudevents+json"},
                                json.dumps(body))
    assert (note.finalized, note.object.name, note.object.generation) == \
        (True, "raw/orders/x.csv", "7")


def test_a_delete_notification_is_not_finalized():
    push = json.loads(json.dumps(PUSH))
    push["message"]["attributes"]["eventType"] = "OBJECT_DELETE"
    assert not events.parse_request({}, json.dumps(push)).finalized


@pytest.mark.parametrize("body, expected", [
    ("not json", "not JSON"),
    ('{"hello": 1}', "an object with keys hello; expected a Pub/Sub push"),
    ('{"message": {"attributes": {"eventType": "OBJECT_FINALIZE"}}}',
     "'bucketId' is missing; attribute 'objectId' is missing"),
    ('{"message": {"data": "***", "attributes": {}}}', "not base64"),
])
def test_a_request_that_is_no_notification_says_what_was_expected(body, expected):
    with pytest.raises(ValueError, match=expected):
        events.parse_request({}, body)


def test_a_delivery_attempt_json_reads_as_infinity_counts_as_the_first():
    """``Infinity`` is valid to Python's JSON reader; int() of it overflows (found by the
    parser fuzzing)."""
    body = json.dumps({**PUSH, "deliveryAttempt": "@"}).replace('"@"', "Infinity")
    note = events.parse_request({"Content-Type": "application/json"}, body)
    assert note.delivery_attempt == 1
