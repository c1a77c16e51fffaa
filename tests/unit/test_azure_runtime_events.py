"""Parsing what Event Grid puts on the notifications hub, on Microsoft's documented
payloads (tests/events/azure, sources in SOURCES.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtimes.azure.events import parse_body

EVENTS = Path(__file__).resolve().parents[1] / "events" / "azure"


@pytest.mark.parametrize("file, schema", [("eventgrid_blob_created.json", "eventgrid"),
                                          ("cloudevents_blob_created.json", "cloudevents")])
def test_blob_created_sample_names_container_blob_etag_and_account(file, schema):
    (note,) = parse_body((EVENTS / file).read_bytes())
    assert (note.kind, note.schema, note.event_id) == (
        "blob", schema, "831e1650-001e-001b-66ab-eeb76e069631")
    ref = note.blob
    assert ref.account_url == "https://my-storage-account.blob.core.windows.net"
    # the subject is authoritative: the sample's url says 'testcontainer'
    assert (ref.container, ref.name) == ("test-container", "new-file.txt")
    assert ref.etag == '"0x8D4BCC2E4835CD0"' and ref.size == 524288
    assert ref.api == "PutBlockList" and ref.sequencer == "00000000000004420000000000028963"


def test_a_cloudevent_delivered_alone_is_one_object_not_an_array():
    (event,) = json.loads((EVENTS / "cloudevents_blob_created.json").read_bytes())
    (note,) = parse_body(json.dumps(event))
    assert note.blob.name == "new-file.txt"


def test_unquoted_etag_and_nested_blob_names_are_kept_whole():
    (event,) = json.loads((EVENTS / "eventgrid_blob_created.json").read_bytes())
    event["subject"] = "/blobServices/default/containers/raw/blobs/raw/orders/a b+c.csv"
    event["data"]["eTag"] = "0x8D4BCC2E4835CD0"
    (note,) = parse_body(json.dumps([event]))
    assert note.blob.name == "raw/orders/a b+c.csv" and note.blob.etag == '"0x8D4BCC2E4835CD0"'


def test_validation_event_is_recognised():
    (note,) = parse_body((EVENTS / "eventgrid_subscription_validation.json").read_bytes())
    assert note.kind == "validation" and note.blob is None


def test_other_event_types_are_not_blobs():
    (event,) = json.loads((EVENTS / "eventgrid_blob_created.json").read_bytes())
    event["eventType"] = "Microsoft.Storage.BlobDeleted"
    (note,) = parse_body(json.dumps([event]))
    assert note.kind == "other" and note.event_type == "Microsoft.Storage.BlobDeleted"


@pytest.mark.parametrize("body, words", [
    (b"not json", "not JSON"),
    (b"[]", "empty array"),
    (b'{"hello": 1}', "neither 'eventType' nor 'specversion'"),
    (b'[{"eventType": "Microsoft.Storage.BlobCreated", "subject": "/x", "data": {}}]',
     "data.url"),
    (b'[{"eventType": "Microsoft.Storage.BlobCreated", "subject": "/nope", '
     b'"data": {"url": "https://a.blob.core.windows.net/c/b"}}]', "subject"),
])
def test_malformed_bodies_say_what_was_expected(body, words):
    with pytest.raises(ValueError, match="expected an Event Grid notification") as info:
        parse_body(body)
    assert words in str(info.value)
