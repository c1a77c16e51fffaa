"""The matrix on the GCP runtime: the Cloud Function's entry point (``runtimes.gcp.main``)
served by the real functions-framework app on 127.0.0.1, each request the Pub/Sub push
body of the GCS notification; gcp-storage-emulator holds the objects and the dead-letter
bucket, the Firestore emulator the users lookup and the idempotency collection (a claim
per object generation, with a checkpoint after every settled batch), and the real
google-cloud-bigquery client writes to the BigQuery stand-in
(``e2e/gcp/conftest.BigQueryStandIn``: the REST boundary, not an emulator).

Pub/Sub's part, redelivering what was not answered 2xx, is played by :func:`deliver`
(the same push body posted again, up to the subscription's ``max_delivery_attempts``),
except in the poison cell, which runs through the Pub/Sub emulator's own push
subscription and dead-letter policy.

Faults: at the stand-in (``insertErrors`` per row, HTTP 429/503/403), at the storage
client's HTTP session (a requests adapter that resets or refuses media downloads), at the
Firestore client's ``get_all`` (``DeadlineExceeded``). The client retry policies keep
their predicates; their delays are shortened (sleeps are configuration, not behaviour).
A kill is a real SIGKILL of a separate Python process running the function (a fresh
interpreter rather than a fork: gRPC clients do not survive a fork).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
from e2e.gcp.conftest import (  # noqa: F401
    PROJECT,
    STATE_DATABASE,
    bigquery,
    idempotent_stack,
    orders_stack,
    served,
)

from components.gcp.checks import max_delivery_attempts
from runtimes.gcp import clients, main

from . import matrix
from .common import ids, ndjson, orders

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
KEY = "raw/orders/2024/05/01/batch.ndjson"
N = 10


@pytest.fixture
def st(idempotent_stack, served):  # noqa: F811
    path = Path(idempotent_stack.env["HEADWATER_MANIFEST"])
    doc = json.loads(path.read_text())
    doc["pipeline"]["limits"]["sink_batch"] = 4
    path.write_text(json.dumps(doc))
    main._reset()
    idempotent_stack.url = served.url
    idempotent_stack.attempts = max_delivery_attempts(idempotent_stack.spec)
    rt = main._runtime()
    rt.engine.retry.sleep = lambda s: None
    from google.cloud.bigquery import DEFAULT_RETRY

    rt.engine.sink._retry = DEFAULT_RETRY.with_deadline(1).with_delay(initial=0.05,
                                                                      maximum=0.2)
    return idempotent_stack


def post(url: str, body: dict[str, Any]) -> int:
    req = urllib.request.Request(url, data=orjson.dumps(body), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def deliver(st, body: dict[str, Any], between=lambda n: None) -> list[int]:
    """What Pub/Sub does with a push: post it, again while the answer is not 2xx, up to the
    subscription's attempts. Returns the statuses in order."""
    statuses: list[int] = []
    for n in range(st.attempts):
        between(n)
        statuses.append(post(st.url, {**body, "deliveryAttempt": n + 1}))
        if statuses[-1] < 300:
            break
    return statuses


def entries(st) -> list[dict[str, Any]]:
    return [e for v in st.deadletters().values() for e in v]


def finish(st, cell: str, recs, note: str, held=(), at_least_once=False):
    """The row: the sink is every row the stand-in accepted, before its insertId
    de-duplication (BigQuery's is best effort), so a resent row would count."""
    return matrix.record("gcp", cell, records_in=ids(recs), sink=st.bigquery.accepted,
                         deadletters=entries(st), held=held, note=note,
                         at_least_once=at_least_once)


class MediaFault(requests.adapters.HTTPAdapter):
    """The storage client's transport for object downloads (``alt=media``):
    ``fault(request, response) -> response`` may raise or replace the real answer."""

    def __init__(self, fault) -> None:
        super().__init__()
        self.fault = fault

    def send(self, request, **kw):
        response = super().send(request, **kw)
        if "alt=media" not in (request.url or ""):
            return response
        return self.fault(request, response)


def media_fault(fault) -> None:
    session = clients.storage()._http
    session.mount(os.environ["STORAGE_EMULATOR_HOST"] + "/", MediaFault(fault))


def test_partial(st):
    recs = orders(N, bad_value={3})
    blob = st.put(KEY, ndjson(recs))
    st.bigquery.reject = lambda row: "invalid" if row["order_id"] in ("5", "8") else None
    assert deliver(st, st.push_body(blob)) == [204]
    row = finish(st, "partial", recs, "insertErrors reason invalid for 2 rows: dead-lettered "
                 "(step sink), the rows stopped with them retried alone; a chain failure "
                 "dead-lettered")
    assert row.dead_lettered == 3
    assert {e["error_type"] for e in entries(st) if e["step"] == "sink"} == {"invalid"}


def test_throttle(st):
    recs = orders(N)
    blob = st.put(KEY, ndjson(recs))
    st.bigquery.fail = lambda n: (429, 503)[n - 1] if n <= 2 else None
    assert deliver(st, st.push_body(blob)) == [204]
    assert len(st.bigquery.refused) == 2
    finish(st, "throttle", recs, "insertAll answered 429 rateLimitExceeded, then 503 "
           "backendError: retried by the client (same insertIds)")


def test_sink_down(st):
    recs = orders(N)
    blob = st.put(KEY, ndjson(recs))
    down = {"on": True}
    st.bigquery.fail = lambda n: 503 if down["on"] else None
    statuses = deliver(st, st.push_body(blob), between=lambda n: down.update(on=n == 0))
    assert statuses == [500, 204] and st.bigquery.refused
    finish(st, "sink-down", recs, "503 on every insertAll until the retries ran out: "
           "answered 500, Pub/Sub redelivered, written")


def test_read_reset(st, monkeypatch):
    recs = orders(N)
    blob = st.put(KEY, ndjson(recs))
    monkeypatch.setattr(main, "READ_CHUNK", 256)  # ranged reads, so the reset is midway
    armed = {"on": True, "resets": 0}

    def reset(request, response):
        start = int(request.headers.get("range", "bytes=0-").split("=")[1].split("-")[0])
        if armed["on"] and start >= 256:
            armed.update(on=False, resets=armed["resets"] + 1)
            raise requests.exceptions.ConnectionError("Connection reset by peer")
        return response

    media_fault(reset)
    assert deliver(st, st.push_body(blob)) == [204]
    assert armed["resets"] == 1
    finish(st, "read-reset", recs, "connection reset after 256 of the object's bytes: the "
           "storage client requested that range again; written once")


CHILD = r"""
import os, signal, sys
import orjson
from runtimes.gcp import clients, events, main

bq = clients.bigquery()
real, calls = bq.insert_rows_json, {"n": 0}

def insert_rows_json(table, rows, row_ids=None, **kw):
    calls["n"] += 1
    if calls["n"] == 2:  # half of the second batch reaches BigQuery, then SIGKILL
        half = len(rows) // 2
        real(table, rows[:half], row_ids=row_ids[:half], **kw)
        os.kill(os.getpid(), signal.SIGKILL)
    return real(table, rows, row_ids=row_ids, **kw)

bq.insert_rows_json = insert_rows_json
body = sys.stdin.buffer.read()
main.handle_notification(events.parse_request({"Content-Type": "application/json"}, body))
"""


def _state_docs(st):
    from google.cloud import firestore

    fs = firestore.Client(project=PROJECT, database=STATE_DATABASE)
    return fs.collection(st.env["HEADWATER_IDEMPOTENCY_COLLECTION"])


def test_killed(st):
    recs = orders(N)
    blob = st.put(KEY, ndjson(recs))
    body = st.push_body(blob)
    child = subprocess.run([sys.executable, "-c", CHILD], input=orjson.dumps(body),
                           env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                           timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
    assert [len(q["rows"]) for q in st.bigquery.requests] == [4, 2]
    # Pub/Sub redelivers after the ack deadline; the dead instance's lease has ended by
    # then (here it is ended at once)
    (doc,) = _state_docs(st).stream()
    assert doc.to_dict()["status"] == "IN_PROGRESS"
    doc.reference.update({"lease_until": 0})
    assert deliver(st, body) == [204]
    row = finish(st, "killed", recs, "SIGKILL after half a batch; the redelivery resumed at "
                 "the last checkpoint and resent that half batch with the same insertIds "
                 "(BigQuery's best-effort de-dup, then the _dedup view, drop them)",
                 at_least_once=True)
    assert row.duplicates == 2
    assert len(st.bigquery.rows) == N  # the stand-in de-duplicated on insertId


def test_duplicate(st):
    recs = orders(N)
    blob = st.put(KEY, ndjson(recs))
    body = st.push_body(blob)
    bodies = [body, {**body, "message": {**body["message"], "messageId": "2"}}]
    inside, go = threading.Event(), threading.Event()

    def hold(row):  # the first insertAll waits until both requests are in
        inside.set()
        go.wait(30)

    st.bigquery.reject = hold
    first: list[int] = []
    worker = threading.Thread(target=lambda: first.append(post(st.url, bodies[0])))
    worker.start()
    try:
        assert inside.wait(30)
        second = post(st.url, bodies[1])
    finally:
        go.set()
        worker.join(60)
    assert (first, second) == ([204], 409)
    assert deliver(st, bodies[1]) == [204]  # Pub/Sub's retry of the 409 finds it done
    finish(st, "duplicate", recs, "two deliveries (GCS publishes at least once) at the same "
           "time: one claim wins (Firestore transaction), the other answered 409, its retry "
           "found the generation done")


def test_overwritten(st):
    first, second = orders(N), orders(N, start=101)
    v1 = st.put(KEY, ndjson(first))
    v2 = st.put(KEY, ndjson(second))
    assert v1.generation != v2.generation
    assert deliver(st, st.push_body(v1)) == [204]
    assert st.bigquery.requests == []
    assert deliver(st, st.push_body(v2, message_id="2")) == [204]
    finish(st, "overwritten", second, "v1's notification names its generation, gone: "
           "acknowledged without a read; v2's notification wrote v2 once")


def test_fail_after_partial(st):
    recs = orders(N)
    blob = st.put(KEY, ndjson(recs))
    phase = {"first": True}
    st.bigquery.fail = lambda n: 403 if phase["first"] and n > 1 else None
    statuses = deliver(st, st.push_body(blob), between=lambda n: phase.update(first=n == 0))
    assert statuses == [500, 204]
    assert [len(q["rows"]) for q in st.bigquery.requests] == [4, 4, 2]
    finish(st, "fail-after-partial", recs, "first batch accepted, then 403 accessDenied: "
           "answered 500; the redelivery resumed after the Firestore checkpoint")


@pytest.fixture
def pubsub(pubsub_emulator, monkeypatch, tmp_path):
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator)
    from google.cloud import pubsub_v1

    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    suffix = tmp_path.name.lower().replace("_", "-")[-20:]
    made: list[tuple[str, str]] = []
    yield publisher, subscriber, suffix, made
    for kind, path in reversed(made):
        if kind == "subscription":
            subscriber.delete_subscription(subscription=path)
        else:
            publisher.delete_topic(topic=path)
    publisher.transport.close()
    subscriber.close()


def test_poison(st, pubsub):
    """Through the Pub/Sub emulator: the component's dead-letter policy (attempts and
    topic) on a push subscription to the served function; its backoff is 0-1 s here (the
    component's 10-600 s would make this minutes long)."""
    from google.protobuf import duration_pb2

    publisher, subscriber, suffix, made = pubsub
    topic = publisher.topic_path(PROJECT, f"notes-{suffix}")
    dead = publisher.topic_path(PROJECT, f"dead-{suffix}")
    for t in (topic, dead):
        publisher.create_topic(name=t)
        made.append(("topic", t))
    dl_sub = subscriber.subscription_path(PROJECT, f"dead-sub-{suffix}")
    push = subscriber.subscription_path(PROJECT, f"push-{suffix}")
    subscriber.create_subscription(request={"name": dl_sub, "topic": dead})
    made.append(("subscription", dl_sub))
    subscriber.create_subscription(request={
        "name": push, "topic": topic, "ack_deadline_seconds": 10,
        "push_config": {"push_endpoint": st.url},
        "retry_policy": {"minimum_backoff": duration_pb2.Duration(seconds=0),
                         "maximum_backoff": duration_pb2.Duration(seconds=1)},
        "dead_letter_policy": {"dead_letter_topic": dead,
                               "max_delivery_attempts": st.attempts}})
    made.append(("subscription", push))

    recs = orders(N)
    blob = st.put(KEY, ndjson(recs))
    refusals = {"n": 0}

    def refuse(request, response):  # reading the object is refused, every time
        refusals["n"] += 1
        r = requests.Response()
        r.status_code, r.url, r.request = 403, request.url, request
        r._content = b'{"error": {"code": 403, "message": "injected: access denied"}}'
        r.headers["Content-Type"] = "application/json"
        return r

    media_fault(refuse)
    data, attrs = st.notification(blob)
    publisher.publish(topic, data, **attrs).result(timeout=30)
    deadline, received = time.monotonic() + 90, []
    while not received and time.monotonic() < deadline:
        received = subscriber.pull(request={"subscription": dl_sub, "max_messages": 10},
                                   timeout=5).received_messages
    (msg,) = received
    assert msg.message.attributes["objectId"] == KEY
    assert msg.message.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == \
        str(st.attempts)
    subscriber.acknowledge(subscription=dl_sub, ack_ids=[msg.ack_id])
    assert refusals["n"] >= st.attempts and st.bigquery.requests == []
    finish(st, "poison", recs, f"reading the object refused (403) on every push: after "
           f"max_delivery_attempts={st.attempts} the notification is on the dead-letter "
           "topic's subscription", held=ids(recs))


def test_lookup_timeout(st):
    from google.api_core.exceptions import DeadlineExceeded

    recs = orders(N)
    blob = st.put(KEY, ndjson(recs))
    lookup = main._runtime().engine.ctx.lookup
    real, calls = lookup.client, {"n": 0}

    class Slow:
        def __getattr__(self, name):
            return getattr(real, name)

        def get_all(self, refs, *a, **kw):
            calls["n"] += 1
            if calls["n"] == 1:
                raise DeadlineExceeded("injected: Firestore did not answer in time")
            return real.get_all(refs, *a, **kw)

    lookup.client = Slow()
    assert deliver(st, st.push_body(blob)) == [500, 204]
    finish(st, "lookup-timeout", recs, "DeadlineExceeded -> Retryable: answered 500, "
           "redelivered, written")
