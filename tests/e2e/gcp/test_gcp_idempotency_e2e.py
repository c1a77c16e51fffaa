"""Once per object generation on GCP: the function with its idempotency collection in the
Firestore emulator (a named state database, as the component creates), served by the real
functions-framework app, reading from gcp-storage-emulator and writing through the real
google-cloud-bigquery client to the BigQuery stand-in (``conftest.BigQueryStandIn``, a
stand-in at the REST boundary). The stand-in de-duplicates insertIds anyway, so these tests
count the ``insertAll`` calls and the rows they carried, not only the rows stored.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from typing import Any

import orjson
import pytest
from google.api_core.exceptions import FailedPrecondition
from test_gcp_function_e2e import DAY, GOOD

from runtimes.core.idempotency import BUSY, DONE, GO
from runtimes.gcp.idempotency import FirestoreIdempotency

pytestmark = pytest.mark.e2e


def _post(url: str, body: dict[str, Any]) -> int:
    req = urllib.request.Request(url, data=orjson.dumps(body), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _docs(st: Any) -> list[dict[str, Any]]:
    from google.cloud import firestore

    fs = firestore.Client(project=st.env["HEADWATER_PROJECT"],
                          database=st.env["HEADWATER_STATE_DATABASE"])
    return [d.to_dict() for d in fs.collection(st.env["HEADWATER_IDEMPOTENCY_COLLECTION"]).stream()]


def _accepted_rows(st: Any) -> list[str]:
    """insertIds of every row of every insertAll call answered 200."""
    return [r["insertId"] for q in st.bigquery.requests for r in q["rows"]]


def test_the_same_notification_twice_is_written_once(idempotent_stack, served):
    st = idempotent_stack
    blob = st.put(DAY + "good.ndjson", GOOD)
    body = st.push_body(blob)
    assert _post(served.url, body) == 204
    assert _post(served.url, body) == 204
    assert len(st.bigquery.requests) == 1 and len(_accepted_rows(st)) == 3
    (doc,) = _docs(st)
    assert doc["status"] == "DONE" and doc["written"] == 3
    assert (doc["bucket"], doc["object"], doc["generation"]) == (
        st.raw, DAY + "good.ndjson", str(blob.generation))
    assert doc["expires_at"].timestamp() > time.time() + 13 * 24 * 3600  # the TTL field


def test_concurrent_deliveries_one_works_the_other_is_told_to_retry(idempotent_stack, served):
    st = idempotent_stack
    blob = st.put(DAY + "good.ndjson", GOOD)
    body = st.push_body(blob)
    inside, go = threading.Event(), threading.Event()

    def hold(row: dict[str, Any]) -> None:  # the first request waits inside insertAll
        inside.set()
        assert go.wait(30)

    st.bigquery.reject = hold
    first: list[int] = []
    worker = threading.Thread(target=lambda: first.append(_post(served.url, body)))
    worker.start()
    try:
        assert inside.wait(30)
        assert _post(served.url, {**body, "message": {**body["message"], "messageId": "2"}}) == 409
    finally:
        go.set()
        worker.join(30)
    assert first == [204]
    assert len(st.bigquery.requests) == 1 and len(_accepted_rows(st)) == 3
    assert _post(served.url, body) == 204  # a later redelivery finds it done
    assert len(st.bigquery.requests) == 1


def test_a_failure_mid_object_then_redelivery_writes_every_row_once(idempotent_stack, served):
    """1200 records: three insertAll calls of 500, 500 and 200 rows. The second is refused
    (403, which neither the client nor the sink retries as a transient error) until the
    redelivery: the first delivery fails (500) after one settled batch, its checkpoint
    stays, and the redelivery resumes after it."""
    st = idempotent_stack
    n = 1200
    lines = "".join(
        f'{{"order_id": {i}, "user_id": "u{i % 3 + 1}", "value": 1.5, "category": "x", '
        f'"ts": "2024-05-01T10:00:00Z"}}\n' for i in range(n))
    blob = st.put(DAY + "big.ndjson", lines)
    body = st.push_body(blob)
    down = True
    st.bigquery.fail = lambda k: 403 if down and k >= 2 else None
    assert _post(served.url, body) == 500
    assert [len(q["rows"]) for q in st.bigquery.requests] == [500]
    (doc,) = _docs(st)
    assert doc["status"] == "FAILED" and doc["checkpoint"] == {"outputs": 500, "entries": 0}

    down = False
    assert _post(served.url, body) == 204
    ids = _accepted_rows(st)
    assert [len(q["rows"]) for q in st.bigquery.requests] == [500, 500, 200]
    assert len(ids) == n and len(set(ids)) == n  # every row accepted once, none twice
    assert len(st.bigquery.rows) == n
    (doc,) = _docs(st)
    assert doc["status"] == "DONE" and doc["checkpoint"] == {"outputs": n, "entries": 0}
    assert _post(served.url, body) == 204 and len(st.bigquery.requests) == 3


class _Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_the_store_lease_takeover_and_fencing(idempotent_stack):
    """The store alone on the emulator: a live lease refuses, an ended one is taken over
    with the checkpoint, and the old holder can no longer write."""
    from google.cloud import firestore

    st = idempotent_stack
    clock = _Clock()
    client = firestore.Client(project=st.env["HEADWATER_PROJECT"],
                              database=st.env["HEADWATER_STATE_DATABASE"])
    store = FirestoreIdempotency(client, st.env["HEADWATER_IDEMPOTENCY_COLLECTION"],
                                 clock=clock)
    key = FirestoreIdempotency.key(st.raw, DAY + "a.ndjson", "7")
    state, old = store.claim(key, 60)
    assert state == GO and store.resume_from is None
    store.checkpoint(key, old, {"outputs": 100, "entries": 2})
    assert store.claim(key, 60) == (BUSY, None)  # the lease is live
    clock.now += 61  # the holder died: its lease ends
    state, new = store.claim(key, 60)
    assert state == GO and store.resume_from == {"outputs": 100, "entries": 2}
    with pytest.raises(FailedPrecondition):  # the old holder is fenced off
        store.checkpoint(key, old, {"outputs": 200, "entries": 2})
    store.release(key, old)  # not its lease any more: nothing happens
    assert _docs(st)[0]["status"] == "IN_PROGRESS"
    store.release(key, new)
    state, third = store.claim(key, 60)  # released: taken at once, checkpoint kept
    assert state == GO and store.resume_from == {"outputs": 100, "entries": 2}
    store.complete(key, third, {"received": 3, "written": 3})
    assert store.claim(key, 60) == (DONE, None)
    clock.now += 15 * 24 * 3600  # past expires_at (before Firestore's TTL deletes it)
    state, _ = store.claim(key, 60)
    assert state == GO and store.resume_from is None
