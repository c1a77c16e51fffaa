"""Hypothesis properties of the three event parsers (what the platforms send).

For arbitrary input, a parser returns or raises ``ValueError`` (the documented error: the
handler then fails, parks or refuses that message), never anything else. For valid
notifications wrapped in arbitrary extra fields, it returns every object they name, with
the name exactly as the platform meant it.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtimes.aws import events as aws
from runtimes.azure import events as azure
from runtimes.gcp import events as gcp

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=20)
# documents shaped like the real ones, with holes and wrong types where it matters
names = st.text(min_size=1, max_size=40).filter(lambda s: "\x00" not in s)
keys = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=60)


def only_value_error(fn, *args):
    try:
        fn(*args)
    except ValueError:
        pass


# -- AWS ------------------------------------------------------------------------------

def s3_record(draw_key: str, extra: dict) -> dict:
    return {**extra, "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "raw"},
                   "object": {"key": quote_plus(draw_key, safe="/"), "size": 1, "eTag": "e"}}}


@FUZZ
@given(json_values)
def test_aws_parse_event_raises_only_value_error(doc):
    only_value_error(aws.parse_event, doc)
    only_value_error(aws.parse_event, {"Records": [doc]})
    only_value_error(aws.parse_event, {"Records": [{"messageId": "m", "body": doc,
                                                    "eventSource": "aws:sqs"}]})


@FUZZ
@given(st.text() | json_values.map(json.dumps))
def test_aws_parse_body_raises_only_value_error(body):
    only_value_error(aws.parse_body, body)


@FUZZ
@given(json_values)
def test_aws_parse_body_of_shaped_documents_raises_only_value_error(inner):
    for doc in ({"Records": [inner]}, {"Records": [{"s3": inner}]},
                {"Records": [{"s3": {"bucket": inner, "object": inner}}]},
                {"Type": "Notification", "Message": json.dumps(inner)},
                {"source": "aws.s3", "detail-type": inner, "detail": inner},
                {"source": "aws.s3", "detail-type": "Object Created",
                 "detail": {"bucket": {"name": "b"}, "object": inner}}):
        only_value_error(aws.parse_body, json.dumps(doc))


@FUZZ
@given(st.lists(keys, min_size=1, max_size=5),
       st.dictionaries(st.text(max_size=8).filter(lambda k: k not in ("s3", "eventSource",
                                                                      "eventName")),
                       json_values, max_size=3),
       st.booleans())
def test_aws_every_object_of_a_valid_body_is_returned_with_its_exact_key(ks, extra, sns):
    body = json.dumps({"Records": [s3_record(k, extra) for k in ks]})
    if sns:
        body = json.dumps({"Type": "Notification", "Message": body})
    note = aws.parse_body(body)
    assert [o.key for o in note.objects] == ks
    assert all(o.created and o.bucket == "raw" for o in note.objects)


# -- GCP ------------------------------------------------------------------------------

headers = st.dictionaries(st.sampled_from(["ce-type", "ce-id", "content-type", "Content-Type",
                                           "x-other"]),
                          st.text(max_size=60) | st.sampled_from(
                              [gcp.PUBSUB_EVENT, gcp.STORAGE_FINALIZED,
                               "application/cloudevents+json"]), max_size=3)


@FUZZ
@given(headers, st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_gcp_parse_request_raises_only_value_error(hdrs, body):
    only_value_error(gcp.parse_request, hdrs, body)


@FUZZ
@given(json_values, json_values, json_values)
def test_gcp_parse_push_of_shaped_documents_raises_only_value_error(attrs, data, attempt):
    for doc in ({"message": attrs}, {"message": {"attributes": attrs, "data": data}},
                {"message": {"attributes": {"eventType": "OBJECT_FINALIZE", "bucketId": "b",
                                            "objectId": "o", "objectGeneration": attrs},
                             "data": base64.b64encode(json.dumps(data).encode()).decode()},
                 "deliveryAttempt": attempt}):
        only_value_error(gcp.parse_push, doc)


@FUZZ
@given(keys, st.integers(min_value=1, max_value=2**63), json_values,
       st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3))
def test_gcp_a_valid_push_names_its_object_whatever_the_payload_holds(name, gen, payload, extra):
    attrs = {**extra, "eventType": "OBJECT_FINALIZE", "bucketId": "raw", "objectId": name,
             "objectGeneration": str(gen)}
    data = base64.b64encode(json.dumps(payload).encode()).decode()
    body = json.dumps({"message": {"attributes": attrs, "data": data, "messageId": "1"}})
    note = gcp.parse_request({}, body.encode())
    assert (note.object.bucket, note.object.name, note.object.generation) == \
        ("raw", name, str(gen))
    assert note.finalized


# -- Azure ----------------------------------------------------------------------------

def grid_event(name: str, extra: dict) -> dict:
    return {**extra, "eventType": azure.BLOB_CREATED, "id": "1",
            "subject": f"/blobServices/default/containers/raw/blobs/{name}",
            "data": {"url": f"https://acct.blob.core.windows.net/raw/{quote(name)}",
                     "eTag": "0x1", "contentLength": 1}}


@FUZZ
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_azure_parse_body_raises_only_value_error(body):
    only_value_error(azure.parse_body, body)


@FUZZ
@given(json_values, json_values)
def test_azure_shaped_events_raise_only_value_error(subject, data):
    for ev in ({"eventType": azure.BLOB_CREATED, "subject": subject, "data": data},
               {"specversion": "1.0", "type": azure.BLOB_CREATED, "subject": subject,
                "data": {"url": subject}},
               {"eventType": subject},
               {"eventType": azure.BLOB_CREATED, "data": {"url": "http://[::1"},
                "subject": "/blobServices/default/containers/c/blobs/b"}):
        only_value_error(azure.parse_body, json.dumps([ev]).encode())


@FUZZ
@given(st.lists(keys.filter(lambda k: k.strip("/") == k and k), min_size=1, max_size=5),
       st.dictionaries(st.text(max_size=8).filter(lambda k: k not in (
           "eventType", "subject", "data", "specversion")), json_values, max_size=3))
def test_azure_every_blob_of_a_valid_body_is_returned_with_its_exact_name(ks, extra):
    body = json.dumps([grid_event(k, extra) for k in ks]).encode()
    notes = azure.parse_body(body)
    assert [(n.blob.container, n.blob.name) for n in notes] == [("raw", k) for k in ks]
