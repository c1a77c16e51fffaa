"""Lambda active tracing: the handler sends one X-Ray subsegment per object, with the
object key as an annotation, to the daemon address Lambda gives (a UDP socket here,
standing in for the X-Ray daemon); nothing when the invocation is not sampled or the
spec's tracing switch is off. The objects come from the moto server as in the other
handler tests."""

from __future__ import annotations

import json
import socket

import pytest

from runtimes.aws import handler

DAY = "raw/orders/2024/05/01/"
GOOD = '{"order_id": 1, "user_id": "u1", "value": 19.99, "category": "books", "ts": "2024-05-01T10:00:00Z"}\n'
ROOT_ID = "1-5759e988-bd862e3fe1be46a994272793"


@pytest.fixture
def daemon(monkeypatch):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2)
    host, port = sock.getsockname()
    monkeypatch.setenv("AWS_XRAY_DAEMON_ADDRESS", f"{host}:{port}")
    yield sock
    sock.close()


def _objects(st):
    return [m for m in st.receive() if "s3:TestEvent" not in m["Body"]]


def test_each_object_is_a_subsegment_with_its_key(orders_stack, fake_context, daemon,
                                                  monkeypatch):
    st = orders_stack
    monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={ROOT_ID};Parent=53995c3f42cd8ad8;Sampled=1")
    st.put(DAY + "good.ndjson", GOOD)
    assert handler.handler(st.event(_objects(st)), fake_context(120_000)) == {
        "batchItemFailures": []}
    header, body = daemon.recv(65536).split(b"\n", 1)
    assert json.loads(header) == {"format": "json", "version": 1}
    doc = json.loads(body)
    assert (doc["trace_id"], doc["parent_id"], doc["type"]) == (
        ROOT_ID, "53995c3f42cd8ad8", "subsegment")
    assert doc["annotations"] == {"pipeline": "orders", "bucket": st.raw,
                                  "object_key": DAY + "good.ndjson"}
    assert doc["end_time"] >= doc["start_time"] and "fault" not in doc


@pytest.mark.parametrize("env", [
    {"_X_AMZN_TRACE_ID": f"Root={ROOT_ID};Parent=53995c3f42cd8ad8;Sampled=0"},
    {"_X_AMZN_TRACE_ID": f"Root={ROOT_ID};Parent=53995c3f42cd8ad8;Sampled=1",
     "HEADWATER_TRACING": "0"}])
def test_nothing_is_sent_unsampled_or_switched_off(orders_stack, fake_context, daemon,
                                                    monkeypatch, env):
    st = orders_stack
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    st.put(DAY + "good.ndjson", GOOD)
    handler.handler(st.event(_objects(st)), fake_context(120_000))
    daemon.settimeout(0.3)
    with pytest.raises(TimeoutError):
        daemon.recv(65536)
