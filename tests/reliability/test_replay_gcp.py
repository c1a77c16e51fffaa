# ruff: noqa: F811  (pytest fixtures imported from the e2e conftests)
"""``headwater replay --stack gcp``: dead-letter files in the dead-letter bucket on
gcp-storage-emulator (written by the Cloud Function), read and moved through the runtime's
dead-letter store (:class:`runtimes.gcp.store.GcsStore`), records written through the
runtime's own BigQuery sink (the real google-cloud-bigquery
client against the BigQuery stand-in, a stand-in at the REST boundary) after the users
collection in the Firestore emulator was fixed for one of the two failed records. The
command runs with the deployed function's settings, given as the stack's outputs."""

from __future__ import annotations

import orjson
import pytest
from e2e.gcp.conftest import (  # noqa: F401
    USERS,
    bigquery,
    orders_stack,
    pubsub,
)

from runtimes.gcp import events, main

from .common import check_replay_of_two_lookup_failures, ndjson, orders, replay_cli, replayed

pytestmark = [pytest.mark.e2e]
KEY = "raw/orders/2024/05/01/replay.ndjson"


def test_replay_from_gcs_into_bigquery_once_and_keeps_what_still_fails(orders_stack,
                                                                      tmp_path):
    from google.cloud import firestore

    st = orders_stack
    recs = orders(5)
    recs[1]["user_id"] = "u9"  # not in the users collection yet: fixed before the replay
    recs[3]["user_id"] = "u8"  # never added: fails again
    blob = st.put(KEY, ndjson(recs))
    note = events.parse_request({"Content-Type": "application/json"},
                                orjson.dumps(st.push_body(blob)))
    main.handle_notification(note)
    assert sorted(r["order_id"] for r in st.bigquery.rows) == ["1", "3", "5"]
    ((first, entries),) = st.deadletters().items()
    assert [(e["step"], e["record"]["user_id"]) for e in entries] == [
        ("3:enrich", "u9"), ("3:enrich", "u8")]

    collection = next(iter(main._runtime().engine.ctx.lookup.collections.values()))
    firestore.Client(project=st.env["HEADWATER_PROJECT"]).collection(collection).document(
        "u9").set({**USERS[0], "user_id": "u9", "country": "NL"})
    main._reset()  # replay runs in its own process: no warm lookup cache

    def replay(*args: str) -> dict:
        return replayed(replay_cli(tmp_path, "gcp", st.env, *args))

    check_replay_of_two_lookup_failures(replay, st.deadletters, lambda: st.bigquery.accepted,
                                        first, entries)


def test_notifications_on_the_dead_letter_subscription_go_back_to_the_topic(
        orders_stack, pubsub, tmp_path):
    """What Pub/Sub dead-lettered after max_delivery_attempts sits on the dead-letter
    subscription; `replay --notifications` publishes it to the notifications topic again
    (data and attributes intact) and acknowledges it, on the Pub/Sub emulator."""
    st = orders_stack
    topic, dead = pubsub.topic("notes"), pubsub.topic("notes-dl")
    watch = pubsub.subscription("watch", topic)
    parked = pubsub.subscription("notes-dl-sub", dead)
    body = orjson.dumps(st.push_body(st.put(KEY, ndjson(orders(2))))["message"])
    note = orjson.loads(body)
    attributes = {**note["attributes"], "CloudPubSubDeadLetterSourceDeliveryCount": "5"}
    pubsub.publisher.publish(dead, b"the object's notification", **attributes).result()
    outputs = {"topics": {"orders": topic}, "project_id": "test-proj",
               "dead_letter_subscriptions": {"orders": parked.rsplit("/", 1)[1]}}

    dry = replayed(replay_cli(tmp_path, "gcp", st.env, "--notifications", "--dry-run",
                              outputs=outputs))
    assert dry["notifications"] == {"from": parked, "to": topic, "moved": 1}
    done = replayed(replay_cli(tmp_path, "gcp", st.env, "--notifications", outputs=outputs))
    assert done["notifications"]["moved"] == 1

    def pull(subscription: str) -> list:
        got = pubsub.subscriber.pull(request={"subscription": subscription,
                                              "max_messages": 10, "return_immediately": True},
                                     timeout=30).received_messages
        if got:
            pubsub.subscriber.acknowledge(request={"subscription": subscription,
                                                   "ack_ids": [m.ack_id for m in got]})
        return [m.message for m in got]

    (back,) = pull(watch)
    assert back.data == b"the object's notification"
    assert dict(back.attributes) == attributes
    assert pull(parked) == []
