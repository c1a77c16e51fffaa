"""Pub/Sub push end to end: the notification GCS publishes (attributes ``eventType``,
``bucketId``, ``objectId``, ``objectGeneration``, ``payloadFormat``, JSON_API_V1 body) is
published with the real google-cloud-pubsub client to a topic on the gcloud Pub/Sub
emulator; a push subscription made by that client delivers it over HTTP to the function,
served by the real functions-framework app on 127.0.0.1 (werkzeug, a free port); the
function reads gcp-storage-emulator and writes to the BigQuery stand-in
(``conftest.BigQueryStandIn``, a stand-in at the REST boundary, not an emulator).

The emulator pushes the plain Pub/Sub push JSON (no ``ce-*`` headers, no OIDC token, and
no ``deliveryAttempt`` field even with a dead-letter policy), and honours dead-letter
policies: observed, a message answered 500 is pushed ``max_delivery_attempts`` times (about
1, 3, 3 and 3 s apart with a 0-1 s backoff: it does not keep to the maximum backoff) and
then published to the dead-letter topic with the original data and attributes plus
``CloudPubSubDeadLetterSource*`` attributes, where the dead-letter topic's own
subscription receives it. The component's 10-600 s backoff would make the test minutes
long, so the subscriptions here use 0-1 s; attempts and the dead-letter topic are the
component's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from test_gcp_function_e2e import BAD, DAY, GOOD

from components.gcp.checks import max_delivery_attempts
from runtimes.gcp import main

pytestmark = pytest.mark.e2e

DEADLINE_S = 60  # every wait below is bounded


def _fast_retry() -> dict[str, Any]:
    from google.protobuf import duration_pb2

    return {"minimum_backoff": duration_pb2.Duration(seconds=0),
            "maximum_backoff": duration_pb2.Duration(seconds=1)}


def _wait(what: str, done: Callable[[], Any], timeout: float = DEADLINE_S) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = done()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def test_a_pushed_gcs_notification_writes_its_rows(orders_stack, served, pubsub):
    st = orders_stack
    topic = pubsub.topic("gcs-notes")
    pubsub.subscription("push", topic, push_config={"push_endpoint": served.url},
                        retry_policy=_fast_retry())
    blob = st.put(DAY + "good.ndjson", GOOD)
    data, attrs = st.notification(blob)
    assert {"eventType", "bucketId", "objectId", "objectGeneration", "payloadFormat"} <= \
        set(attrs)
    pubsub.publisher.publish(topic, data, **attrs).result(timeout=30)

    _wait("rows in BigQuery", lambda: len(st.bigquery.rows) == 3)
    assert sorted(r["order_id"] for r in st.bigquery.rows) == ["1", "2", "3"]
    assert st.bigquery.rows[0]["tier"] == "gold" and st.bigquery.rows[0]["value_cents"] == 1999
    time.sleep(3)  # the 204 acknowledged it: no second push comes
    assert served.statuses == [204] and len(st.bigquery.requests) == 1


def test_a_notification_that_always_fails_ends_on_the_dead_letter_topic(
        orders_stack, served, pubsub, monkeypatch):
    """The poison: an object with bad records while the dead-letter bucket is not there,
    so every delivery answers 500 (nothing may be acknowledged that is not written or
    dead-lettered). After the component's number of attempts, Pub/Sub moves the
    notification to the dead-letter topic, whose subscription holds it with its
    attributes."""
    st = orders_stack
    monkeypatch.setenv("HEADWATER_DEADLETTER_BUCKET", st.deadletter + "-missing")
    main._reset()
    attempts = max_delivery_attempts(st.spec)
    assert attempts == 5
    topic, dead_letter = pubsub.topic("gcs-notes"), pubsub.topic("dead-letter")
    dl_sub = pubsub.subscription("dead-letter-sub", dead_letter)
    pubsub.subscription("push", topic, push_config={"push_endpoint": served.url},
                        retry_policy=_fast_retry(),
                        dead_letter_policy={"dead_letter_topic": dead_letter,
                                            "max_delivery_attempts": attempts})
    blob = st.put(DAY + "bad.ndjson", BAD)
    data, attrs = st.notification(blob)
    pubsub.publisher.publish(topic, data, **attrs).result(timeout=30)

    def pulled() -> Any:
        resp = pubsub.subscriber.pull(request={"subscription": dl_sub, "max_messages": 10},
                                      timeout=5)
        return resp.received_messages

    (received,) = _wait("a message on the dead-letter subscription", pulled)
    msg = received.message
    assert msg.data == data
    assert {k: msg.attributes[k] for k in attrs} == attrs
    assert msg.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == str(attempts)
    assert msg.attributes["CloudPubSubDeadLetterSourceSubscription"].startswith("push-")
    assert served.statuses == [500] * attempts
    pubsub.subscriber.acknowledge(subscription=dl_sub, ack_ids=[received.ack_id])
    assert st.deadletters() == {}  # nothing was acknowledged as dead-lettered per record
