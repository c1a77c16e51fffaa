"""The matrix on the Azure runtime: the real ``function_app`` (its one function, as the
worker indexes it) called with ``azure.functions.EventHubEvent`` objects whose bodies are
Event Grid BlobCreated notifications; Azurite holds the blobs, the dead-letter container,
the users lookup table and the claims table (a claim per blob version, with a checkpoint
after every batch the hub accepted); the processed Event Hub is the stand-in of
``e2e/azure/azure_harness`` (Event Hubs has no emulator that runs here): ``EventDataBatch``es
with the hub's size limit, every accepted event recorded, duplicates included.

The Functions host's part is played by :func:`deliver`: it runs the batch again while the
function raises and its retry policy (``function_app.MAX_RETRIES``) has attempts left,
passing the retry context; on the last attempt the function parks what still fails in
the dead-letter container (the Event Hub checkpoint moves on after it, so raising would
lose the notification). A parked notification is counted as *held for redelivery*: it
carries the blob reference and the error, and replaying it runs the blob again.

Faults: at the stand-in hub (``EventHubError`` on ``send_batch``, the per-event size
limit), at the blob client (a download stream that breaks after N bytes, a download that
always fails), at the lookup's Table Storage client (a timeout). A kill is a real SIGKILL
of a forked process running the function; the hub events it sent before dying reach the
parent through a file (the stand-in lives in process memory).
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import orjson
import pytest
from azure.core.exceptions import ServiceResponseError, ServiceResponseTimeoutError
from azure_harness import FunctionContext, StandInHub, hub_events, indexed_function
from e2e.azure.conftest import function_on_azurite, orders_stack  # noqa: F401

from runtimes.azure import clients, handler
from runtimes.azure.function_app import MAX_RETRIES

from . import matrix
from .common import ids, ndjson, orders

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
FUNCTION = indexed_function()
KEY = "raw/orders/2024/05/01/batch.ndjson"
N = 10


@pytest.fixture
def st(orders_stack):  # noqa: F811
    path = Path(orders_stack.env["HEADWATER_MANIFEST"])
    doc = json.loads(path.read_text())
    doc["pipeline"]["limits"]["sink_batch"] = 4
    path.write_text(json.dumps(doc))
    handler._reset()
    clients.set_producer(orders_stack.hub)
    handler._runtime().engine.retry.sleep = lambda s: None  # no real backoff in the test
    return orders_stack


def invoke(bodies: list[bytes], retry_count: int = 0) -> None:
    FUNCTION.get_user_function()(hub_events(bodies),
                                 FunctionContext(retry_count, MAX_RETRIES))


def deliver(bodies: list[bytes], between=lambda n: None) -> list[str]:
    """What the host does with one batch: run it, again while it raises and the retry
    policy has attempts left. Returns each attempt's outcome (``ok`` or the error type)."""
    outcomes: list[str] = []
    for n in range(MAX_RETRIES + 1):
        between(n)
        try:
            invoke(bodies, n)
        except Exception as exc:
            outcomes.append(type(exc).__name__)
            continue
        outcomes.append("ok")
        break
    return outcomes


def entries(st) -> list[dict[str, Any]]:
    return [e for v in st.deadletters().values() for e in v]


def finish(st, cell: str, recs, note: str, held=(), at_least_once=False, sent=()):
    """The row: the sink is every event the hub accepted (Data Explorer ingests each)."""
    return matrix.record("azure", cell, records_in=ids(recs), sink=[*sent, *st.hub.events],
                         deadletters=entries(st), held=held, note=note,
                         at_least_once=at_least_once)


def blob_fault(download) -> None:
    """The function's blob clients with ``download_blob`` replaced by
    ``download(real_client, **kw)``."""
    real = clients.blob_service()

    class Blob:
        def __init__(self, client):
            self.client = client

        def __getattr__(self, name):
            return getattr(self.client, name)

        def download_blob(self, **kw):
            return download(self.client, **kw)

    class Service:
        def __getattr__(self, name):
            return getattr(real, name)

        def get_blob_client(self, *a, **kw):
            return Blob(real.get_blob_client(*a, **kw))

    clients._clients["blob"] = Service()


def test_partial(st):
    recs = orders(N, bad_value={3})
    for r in recs:
        if r["order_id"] in ("5", "8"):
            r["category"] = "x" * 900
    st.hub.max_bytes = 700
    blob = st.put(KEY, ndjson(recs))
    assert deliver([st.notification(blob)]) == ["ok"]
    row = finish(st, "partial", recs, "Event Hubs takes or refuses a whole batch: the partial "
                 "refusal is its per-event size limit (2 events over it: dead-lettered, step "
                 "sink, RecordTooLarge); a chain failure dead-lettered")
    assert row.dead_lettered == 3
    assert {e["error_type"] for e in entries(st) if e["step"] == "sink"} == {"RecordTooLarge"}


def test_throttle(st):
    recs = orders(N)
    blob = st.put(KEY, ndjson(recs))
    st.hub.fail_sends = 2
    assert deliver([st.notification(blob)]) == ["ok"]
    assert st.hub.send_calls == len(st.hub.sent) + 2
    finish(st, "throttle", recs, "send_batch refused twice (EventHubError): retried with "
           "backoff within the invocation")


def test_sink_down(st):
    recs = orders(N)
    blob = st.put(KEY, ndjson(recs))
    outcomes = deliver([st.notification(blob)],
                       between=lambda n: setattr(st.hub, "fail_sends", 10_000 if n == 0 else 0))
    assert outcomes == ["SinkUnavailable", "ok"] and st.parked() == {}
    finish(st, "sink-down", recs, "every send refused: the invocation raised, the retry "
           "policy ran the batch again, written")


def test_read_reset(st):
    recs = orders(N)
    blob = st.put(KEY, ndjson(recs))
    armed = {"on": True}

    class Resetting:
        def __init__(self, stream):
            self.stream, self.n = stream, 0

        def read(self, n=-1):
            data = self.stream.read(min(n, 100) if n and n > 0 else 100)
            self.n += len(data)
            if armed["on"] and self.n > 300:
                armed["on"] = False
                raise ServiceResponseError("Connection reset by peer")
            return data

        def __getattr__(self, name):
            return getattr(self.stream, name)

    blob_fault(lambda client, **kw: Resetting(client.download_blob(**kw)))
    seen: list[int] = []
    outcomes = deliver([st.notification(blob)], between=lambda n: seen.append(
        len(st.hub.events)))
    assert outcomes == ["ServiceResponseError", "ok"] and not armed["on"]
    # records are decoded up to 1000 at a time: the break came before any was sent
    assert seen == [0, 0] and [len(b) for b in st.hub.sent] == [4, 4, 2]
    finish(st, "read-reset", recs, "download stream broken after 300 bytes "
           "(ServiceResponseError), before any record was sent: the invocation raised, the "
           "retry read the blob again and wrote all once")


def _fork(fn) -> int:
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            code = fn()
        finally:
            os._exit(code)
    return pid


class FileHub(StandInHub):
    """The stand-in hub of a forked process: each accepted batch is also appended to a
    file (one line per batch), so the parent sees what the hub took before a kill."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def accept(self, events: list[dict[str, Any]]) -> None:
        with self.path.open("ab") as f:
            f.write(orjson.dumps(events) + b"\n")
            f.flush()
            os.fsync(f.fileno())

    def send_batch(self, batch, **kw):
        super().send_batch(batch, **kw)
        self.accept(self.sent[-1])


def _file_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [e for line in path.read_bytes().splitlines() for e in orjson.loads(line)]


def _in_child(path: Path, hub_setup=lambda hub: None) -> None:
    handler._reset()
    hub = FileHub(path)
    hub_setup(hub)
    clients.set_producer(hub)
    handler._runtime().engine.retry.sleep = lambda s: None


def test_killed(st, tmp_path):
    recs = orders(N)
    blob = st.put(KEY, ndjson(recs))
    body = st.notification(blob)
    sent = tmp_path / "child-hub.ndjson"

    def child():
        def half_then_die(hub):
            real = hub.send_batch

            def send_batch(batch, **kw):
                if hub.send_calls == 1:  # half of the second batch reaches the hub, then SIGKILL
                    events = [orjson.loads(e.body_as_str()) for e in batch._internal_events]
                    hub.accept(events[: len(events) // 2])
                    os.kill(os.getpid(), signal.SIGKILL)
                return real(batch, **kw)

            hub.send_batch = send_batch

        _in_child(sent, half_then_die)
        invoke([body])
        return 0

    _, status = os.waitpid(_fork(child), 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    before = _file_events(sent)
    assert len(before) == 6
    claim = st.claim(blob)
    assert claim["status"] == "IN_PROGRESS" and claim["cp_outputs"] == 4
    # the dead instance's lease (longer than the function timeout) ends before the host
    # hands the partition's events to another instance; here it is ended at once
    st.tables.get_table_client(st.claims).update_entity(
        {"PartitionKey": claim["PartitionKey"], "RowKey": claim["RowKey"], "lease_until": 0.0})
    assert deliver([body]) == ["ok"]  # the checkpoint did not move: the batch comes again
    row = finish(st, "killed", recs, "SIGKILL after half a batch; the events came again, the "
                 "claim resumed at its checkpoint and resent that half batch with the same "
                 "ids (the function <table>_dedup() in Data Explorer shows one row per id)",
                 at_least_once=True, sent=before)
    assert row.duplicates == 2


def test_duplicate(st, tmp_path):
    recs = orders(N)
    blob = st.put(KEY, ndjson(recs))
    bodies = [st.notification(blob), st.notification(blob, "cloudevents")]
    sent = tmp_path / "children-hub.ndjson"
    r, w = os.pipe()

    def child():
        _in_child(sent)
        os.read(r, 1)  # both start together
        try:
            invoke(bodies)
        except Exception:
            return 1
        return 0

    pids = [_fork(child), _fork(child)]
    os.write(w, b"xx")
    codes = [os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in pids]
    assert sorted(codes) in ([0, 0], [0, 1]), codes
    for code in codes:
        if code:  # the retry policy runs the busy one again: it finds the version done
            assert deliver(bodies, between=lambda n: None) == ["ok"]
    assert st.claim(blob)["status"] == "DONE"
    finish(st, "duplicate", recs, "4 deliveries in 2 concurrent invocations (forked "
           "processes): one claim wins (Table Storage ETag), the other saw BUSY and its "
           "retry found the version DONE, or saw DONE", sent=_file_events(sent))


def test_overwritten(st):
    first, second = orders(N), orders(N, start=101)
    v1 = st.put(KEY, ndjson(first))
    v2 = st.put(KEY, ndjson(second))
    assert v1["etag"] != v2["etag"]
    assert deliver([st.notification(v1)]) == ["ok"]
    assert st.hub.events == [] and st.parked() == {}
    assert deliver([st.notification(v2)]) == ["ok"]
    finish(st, "overwritten", second, "v1's event: 412 on If-Match with its ETag, "
           "acknowledged as superseded (v1 no longer exists); v2 written once")


def test_fail_after_partial(st):
    recs = orders(N)
    blob = st.put(KEY, ndjson(recs))
    real, phase = st.hub.send_batch, {"first": True}

    def send_batch(batch, **kw):
        if phase["first"] and st.hub.send_calls >= 1:
            st.hub.send_calls += 1
            from azure.eventhub.exceptions import EventHubError
            raise EventHubError("injected: the processed hub is down")
        return real(batch, **kw)

    st.hub.send_batch = send_batch
    outcomes = deliver([st.notification(blob)],
                       between=lambda n: phase.update(first=n == 0))
    assert outcomes == ["SinkUnavailable", "ok"]
    assert [len(b) for b in st.hub.sent] == [4, 4, 2]
    finish(st, "fail-after-partial", recs, "first batch accepted, then the hub refused: the "
           "invocation raised; the retry resumed after the claim's checkpoint")


def test_poison(st):
    recs = orders(N)
    blob = st.put(KEY, ndjson(recs))
    body = st.notification(blob)

    def refuse(client, **kw):
        raise ServiceResponseError("injected: the blob cannot be read")

    blob_fault(refuse)
    outcomes = deliver([body])
    assert outcomes == ["ServiceResponseError"] * MAX_RETRIES + ["ok"]
    ((_, doc),) = st.parked().items()
    assert doc["error_type"] == "ServiceResponseError" and doc["reason"]
    assert doc["blob"]["name"] == KEY and doc["body"].encode() == body
    finish(st, "poison", recs, f"read fails every time: after the retry policy's "
           f"{MAX_RETRIES} retries the notification is parked in the dead-letter container "
           "with its error (the checkpoint moves on); replaying it re-runs the blob",
           held=ids(recs))


def test_lookup_timeout(st):
    recs = orders(N)
    blob = st.put(KEY, ndjson(recs))
    lookup = handler._runtime().engine.ctx.lookup
    real, calls = lookup.service, {"n": 0}

    class Table:
        def __init__(self, client):
            self.client = client

        def __getattr__(self, name):
            return getattr(self.client, name)

        def query_entities(self, *a, **kw):
            calls["n"] += 1
            if calls["n"] == 1:
                raise ServiceResponseTimeoutError("injected: Table Storage did not answer")
            return self.client.query_entities(*a, **kw)

    class Service:
        def __getattr__(self, name):
            return getattr(real, name)

        def get_table_client(self, name):
            return Table(real.get_table_client(name))

    lookup.service = Service()
    outcomes = deliver([st.notification(blob)])
    assert outcomes == ["Retryable", "ok"]
    finish(st, "lookup-timeout", recs, "ServiceResponseTimeoutError -> Retryable: the "
           "invocation raised, the retry wrote all")

