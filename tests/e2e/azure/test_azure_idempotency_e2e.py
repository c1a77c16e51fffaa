"""Azure resume after a partial failure, on Azurite's Table service: each blob version is
claimed in the claims table (runtimes/azure/idempotency.py, driven by
runtimes/core/idempotency.process_once), checkpointed after every batch the processed
hub accepted, and marked done.

The processed hub is the stand-in of azure_harness (Event Hubs has no emulator that runs
here): every count below is of the events it *accepted*, duplicates included, so a
record sent twice would show."""

from __future__ import annotations

import threading
from typing import Any

import orjson
import pytest
from azure.core.exceptions import HttpResponseError
from azure.eventhub.exceptions import EventHubError
from azure_harness import FunctionContext, hub_events, indexed_function

from runtimes.azure import handler
from runtimes.azure.idempotency import TableIdempotency
from runtimes.core.idempotency import BUSY, DONE, GO, ObjectBusy

pytestmark = pytest.mark.e2e
FUNCTION = indexed_function()
DAY = "raw/orders/2024/05/02/"


def _invoke(bodies: list[bytes], retry_count: int = 0, max_retry_count: int = 5) -> None:
    FUNCTION.get_user_function()(hub_events(bodies), FunctionContext(retry_count, max_retry_count))


def _orders(n: int) -> str:
    return "".join(f'{{"order_id": {i}, "user_id": "u{1 + i % 3}", "value": {i}.25, '
                   f'"category": " c{i % 5} ", "ts": "2024-05-02T10:00:00Z"}}\n'
                   for i in range(1, n + 1))


def _metrics(out: str) -> list[dict[str, Any]]:
    return [orjson.loads(line)["metrics"] for line in out.splitlines()
            if line.startswith("{") and orjson.loads(line)["message"] == "headwater metrics"]


def test_the_same_notification_twice_sends_once_and_the_claim_says_done(orders_stack, capsys):
    st = orders_stack
    blob = st.put(DAY + "twice.ndjson", _orders(5))
    body = st.notification(blob)
    _invoke([body])
    _invoke([st.notification(blob, "cloudevents")])  # the same blob version, other schema
    assert sorted(int(e["order_id"]) for e in st.hub.events) == [1, 2, 3, 4, 5]
    claim = st.claim(blob)
    assert (claim["status"], claim["written"], claim["blob"], claim["blob_etag"]) == (
        "DONE", 5, DAY + "twice.ndjson", blob["etag"])
    assert [(m["Objects"], m["Duplicates"]) for m in _metrics(capsys.readouterr().out)] == [
        (1, 0), (0, 1)]


def test_a_producer_failure_mid_blob_then_the_retry_sends_every_event_exactly_once(
        orders_stack, capsys):
    """1200 records: the engine sends batches of 500 (sink_batch), one EventDataBatch each.
    The hub accepts the first and refuses everything after it; the function raises (its
    retry policy runs the batch again) with the claim released and its checkpoint at 500;
    the retry resumes there."""
    st = orders_stack
    blob = st.put(DAY + "big.ndjson", _orders(1200))
    body = st.notification(blob)
    handler._runtime().engine.retry.sleep = lambda _s: None  # no real backoff in the test
    real, accepted = st.hub.send_batch, {"n": 0}

    def down_after_first(batch, **kw):
        if accepted["n"] >= 1:
            raise EventHubError("injected: the processed hub is down")
        accepted["n"] += 1
        return real(batch, **kw)

    st.hub.send_batch = down_after_first
    with pytest.raises(Exception, match="sink failed"):
        _invoke([body], retry_count=0, max_retry_count=5)
    assert len(st.hub.events) == 500
    claim = st.claim(blob)
    assert (claim["status"], claim["cp_outputs"], claim["lease_until"]) == ("FAILED", 500, 0.0)
    assert st.parked() == {}  # not the last attempt: raised, not parked

    st.hub.send_batch = real  # the hub is back; the function's retry policy runs again
    capsys.readouterr()
    _invoke([body], retry_count=1, max_retry_count=5)
    ids = [e["_headwater_id"] for e in st.hub.events]
    assert len(ids) == 1200 and len(set(ids)) == 1200  # accepted events, duplicates counted
    assert sorted(int(e["order_id"]) for e in st.hub.events) == list(range(1, 1201))
    out = capsys.readouterr().out
    (m,) = _metrics(out)
    assert m["Written"] == 700 and m["Objects"] == 1
    (resumed,) = [orjson.loads(line) for line in out.splitlines() if line.startswith("{")
                  and "resuming an object" in orjson.loads(line)["message"]]
    assert resumed["outputs"] == 500 and resumed["blob"] == DAY + "big.ndjson"
    assert st.claim(blob)["status"] == "DONE"
    _invoke([body], retry_count=0)  # Event Grid's at-least-once redelivery: nothing more
    assert len(st.hub.events) == 1200


def test_two_concurrent_deliveries_one_works_the_other_retries(orders_stack, capsys):
    """The first delivery is held inside its first send to the hub; a second instance (a
    partition moved while the first still runs) gets the same notification: the blob is
    busy, so it raises and the function's retry policy runs it later, when it finds the
    blob done."""
    st = orders_stack
    blob = st.put(DAY + "race.ndjson", _orders(7))
    body = st.notification(blob)
    real = st.hub.send_batch
    inside, go_on = threading.Event(), threading.Event()

    def held(batch, **kw):
        inside.set()
        assert go_on.wait(30)
        return real(batch, **kw)

    st.hub.send_batch = held
    errors: list[BaseException] = []

    def first() -> None:
        try:
            _invoke([body])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    worker = threading.Thread(target=first)
    worker.start()
    try:
        assert inside.wait(30)
        first_instance = handler._state[:]
        handler._state[:] = [handler._build()]  # another instance: its own engine and state
        with pytest.raises(ObjectBusy, match="being processed by another invocation"):
            _invoke([body], retry_count=0, max_retry_count=5)
        assert st.claim(blob)["status"] == "IN_PROGRESS" and st.parked() == {}
    finally:
        go_on.set()
        worker.join(30)
    assert not errors and not worker.is_alive()
    assert st.claim(blob)["status"] == "DONE"
    st.hub.send_batch = real
    _invoke([body], retry_count=1, max_retry_count=5)  # the second delivery's retry
    assert sorted(int(e["order_id"]) for e in st.hub.events) == list(range(1, 8))
    assert first_instance and handler._state[0] is not first_instance[0]
    assert "blob not processed; the function's retry policy runs this batch again" in \
        capsys.readouterr().out


def test_claims_race_on_the_entity_etag_and_a_taken_over_claim_writes_nothing(orders_stack):
    """The store alone on Azurite's Table service: eight claims at once get one GO; a claim
    whose lease ended is taken over with its checkpoint, and the old holder's writes no
    longer land."""
    st = orders_stack
    table = st.tables.get_table_client(st.claims)
    key = TableIdempotency.key("raw", DAY + "x.ndjson", '"0x8DC0000000000001"')
    barrier = threading.Barrier(8)
    results: list[tuple[str, str | None]] = []

    def claim() -> None:
        store = TableIdempotency(table, "orders")
        barrier.wait()
        results.append(store.claim(key, 60))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(state for state, _ in results) == [BUSY] * 7 + [GO]

    now = {"t": 1_000_000.0}
    key2 = TableIdempotency.key("raw", DAY + "y.ndjson", '"0x8DC0000000000002"')
    old = TableIdempotency(table, "orders", clock=lambda: now["t"])
    state, token = old.claim(key2, 10)
    assert state == GO and old.resume_from is None
    old.checkpoint(key2, token, {"outputs": 300, "entries": 2})
    now["t"] += 11  # the old holder's lease ends (it died, or is still stuck)
    new = TableIdempotency(table, "orders", clock=lambda: now["t"])
    state2, token2 = new.claim(key2, 10)
    assert state2 == GO and new.resume_from == {"outputs": 300, "entries": 2}
    with pytest.raises(HttpResponseError):
        old.checkpoint(key2, token, {"outputs": 400, "entries": 2})
    with pytest.raises(HttpResponseError):
        old.complete(key2, token, {"written": 400})
    old.release(key2, token)  # not ours any more: no error, nothing written
    new.complete(key2, token2, {"written": 500})
    row = table.get_entity("orders", TableIdempotency.row_key(key2))
    assert (row["status"], row["written"], row["cp_outputs"]) == ("DONE", 500, 300)
    assert new.claim(key2, 10) == (DONE, None)
