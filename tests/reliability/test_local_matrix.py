"""The matrix on the local runner (``headwater run``): DuckDB warehouse, dead-letter
folder, ledger. Faults are injected at the runner's sink (``make_sink``), reader and
lookup; a kill is a real SIGKILL of a forked process; "redelivery" is the next run, which
takes every object that is not in the ledger."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from headwater.local import local_runner
from headwater.spec import parse_stack
from runtimes.core.engine import Failure
from runtimes.local import lookup as local_lookup
from runtimes.local.hashing import HashingReader

from . import matrix
from .common import ids, ndjson, orders

ROOT = Path(__file__).resolve().parents[2]
KEY = "raw/orders/2024/05/01/batch.ndjson"
N = 10


def stack():
    config = yaml.safe_load((ROOT / "Pulumi.local.yaml").read_text())["config"]
    (orders_spec,) = [p for p in config["headwater:pipelines"] if p["name"] == "orders"]
    orders_spec["limits"] = {"sink_batch": 4, "max_attempts": 3}
    config["headwater:pipelines"] = [orders_spec]
    return parse_stack(config)


class Bucket:
    def __init__(self, tmp: Path) -> None:
        self.root = tmp / "bucket"
        (self.root / "lookup").mkdir(parents=True)
        shutil.copy(ROOT / "examples" / "orders" / "lookup" / "users.csv",
                    self.root / "lookup" / "users.csv")
        self.warehouse = tmp / "warehouse.duckdb"

    def put(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def run(self, **kw: Any):
        kw.setdefault("sleep", lambda s: None)
        return local_runner(stack(), self.root, self.warehouse, handle_sigint=False,
                            **kw).run()

    def sink(self) -> list[dict[str, Any]]:
        if not self.warehouse.exists():
            return []
        with duckdb.connect(str(self.warehouse), read_only=True) as con:
            if not con.execute("select count(*) from information_schema.tables "
                               "where table_name = 'orders'").fetchone()[0]:
                return []
            cur = con.execute("select order_id, _headwater_id from orders")
            return [dict(zip(("order_id", "_headwater_id"), r, strict=True)) for r in cur.fetchall()]

    def deadletters(self) -> list[dict[str, Any]]:
        return [json.loads(x) for f in sorted((self.root / "deadletter").rglob("*.ndjson"))
                for x in f.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def bucket(tmp_path: Path) -> Bucket:
    return Bucket(tmp_path)


class Wrap:
    """The DuckDB sink with a fault: ``fault(call, records) -> None`` (pass through),
    ``list[Failure]`` or an exception to raise."""

    def __init__(self, sink: Any, fault) -> None:
        self.sink, self.fault, self.calls = sink, fault, 0
        self.max_batch = sink.max_batch

    def write(self, records: list[dict[str, Any]]):
        self.calls += 1
        verdict = self.fault(self.calls, records)
        if isinstance(verdict, BaseException):
            raise verdict
        if verdict:
            keep = {f.index for f in verdict}
            failures = self.sink.write([r for i, r in enumerate(records) if i not in keep])
            assert not failures
            return verdict
        return self.sink.write(records)


def finish(bucket: Bucket, cell: str, recs: list[dict], note: str, held: list[str] = ()):
    return matrix.record("local", cell, records_in=ids(recs), sink=bucket.sink(),
                         deadletters=bucket.deadletters(), held=held, note=note)


def test_partial(bucket: Bucket):
    recs = orders(N, bad_value={3})
    bucket.put(KEY, ndjson(recs))
    rejected = {"5", "8"}

    def fault(call, records):
        return [Failure(i, "CheckViolation", "sink refused the row", retryable=False)
                for i, r in enumerate(records) if r["order_id"] in rejected]

    report = bucket.run(make_sink=lambda s: Wrap(s, fault))
    assert report.ok
    row = finish(bucket, "partial", recs, "refused rows and a chain failure dead-lettered")
    assert row.dead_lettered == 3
    assert {e["step"] for e in bucket.deadletters()} == {"sink", "1:cents"}


def test_throttle(bucket: Bucket):
    recs = orders(N)
    bucket.put(KEY, ndjson(recs))
    report = bucket.run(make_sink=lambda s: Wrap(
        s, lambda call, r: ConnectionError("429 Too Many Requests") if call <= 2 else None))
    assert report.ok
    finish(bucket, "throttle", recs, "two refused calls retried with backoff")


def test_sink_down(bucket: Bucket):
    recs = orders(N)
    bucket.put(KEY, ndjson(recs))
    report = bucket.run(make_sink=lambda s: Wrap(
        s, lambda call, r: ConnectionError("503 Service Unavailable")))
    assert [e.key for e in report.errors] == [KEY] and "SinkUnavailable" in report.errors[0].error
    assert bucket.sink() == [] and bucket.deadletters() == []  # rolled back, not in the ledger
    assert bucket.run().ok  # the next run is the redelivery
    finish(bucket, "sink-down", recs, "run failed and rolled back; the next run wrote all")


def test_read_reset(bucket: Bucket, monkeypatch: pytest.MonkeyPatch):
    recs = orders(N)
    bucket.put(KEY, ndjson(recs))
    real = HashingReader.read
    state = {"n": 0, "armed": True}

    def read(self, n=-1):
        data = real(self, 64 if state["armed"] else n)
        state["n"] += len(data)
        if state["armed"] and state["n"] > 300:
            state["armed"] = False
            raise ConnectionResetError(104, "Connection reset by peer")
        return data

    monkeypatch.setattr(HashingReader, "read", read)
    report = bucket.run()
    assert "ConnectionResetError" in report.errors[0].error and bucket.sink() == []
    assert bucket.run().ok
    finish(bucket, "read-reset", recs, "reset after 300 bytes: rolled back; next run wrote all")


def _fork(fn) -> int:
    pid = os.fork()
    if pid == 0:  # the child: run, and never return into pytest
        try:
            fn()
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    return status


def test_killed(bucket: Bucket):
    recs = orders(N)
    bucket.put(KEY, ndjson(recs))

    class KillingSink(Wrap):
        def write(self, records):
            self.calls += 1
            if self.calls == 2:
                self.sink.write(records[: len(records) // 2])
                os.kill(os.getpid(), signal.SIGKILL)
            return self.sink.write(records)

    status = _fork(lambda: bucket.run(make_sink=lambda s: KillingSink(s, lambda call, r: None)))
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert bucket.sink() == []  # the transaction never committed
    assert bucket.run().ok
    finish(bucket, "killed", recs, "SIGKILL mid-batch: uncommitted; the next run wrote all")


def test_duplicate(bucket: Bucket):
    """Two runs at once on one warehouse (two notifications of one object): DuckDB's file
    lock lets one in; the other fails and writes nothing; a third run finds it done."""
    recs = orders(N)
    bucket.put(KEY, ndjson(recs))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            con = duckdb.connect(str(bucket.warehouse))  # hold the lock as a running run does
            os.write(w, b"1")
            import time

            time.sleep(3)
            con.close()
        finally:
            os._exit(0)
    os.close(w)
    os.read(r, 1)
    with pytest.raises(duckdb.Error, match="lock"):
        bucket.run()
    os.waitpid(pid, 0)
    assert bucket.run().ok
    again = bucket.run()
    assert again.pipelines[0].skipped == 1 and again.pipelines[0].objects == 0
    finish(bucket, "duplicate", recs, "second run refused by the file lock; third skips (ledger)")


def test_overwritten(bucket: Bucket):
    first, second = orders(N), orders(N, start=101)
    bucket.put(KEY, ndjson(first))

    class Overwrite:
        def start(self, objects, total): pass
        def bytes_read(self, n): pass
        def done(self, pipeline, key, ok): pass

        def begin(self, pipeline, key, size):  # between the listing and the read
            bucket.put(KEY, ndjson(second))

    report = bucket.run(progress=Overwrite())
    assert "changed while it was being read" in report.errors[0].error
    assert bucket.sink() == []
    assert bucket.run().ok
    finish(bucket, "overwritten", second,
           "the first version is gone; the run refused the changed bytes, the next took v2")


def test_fail_after_partial(bucket: Bucket):
    recs = orders(N)
    bucket.put(KEY, ndjson(recs))
    report = bucket.run(make_sink=lambda s: Wrap(
        s, lambda call, r: ConnectionError("503") if call > 1 else None))
    assert report.errors and bucket.sink() == []  # the accepted batch was rolled back too
    assert bucket.run().ok
    finish(bucket, "fail-after-partial", recs,
           "first batch accepted then sink down: rolled back whole; next run wrote all once")


def test_poison(bucket: Bucket, monkeypatch: pytest.MonkeyPatch):
    recs = orders(N)
    bucket.put(KEY, ndjson(recs))

    def read(self, n=-1):
        raise ConnectionResetError(104, "Connection reset by peer")

    monkeypatch.setattr(HashingReader, "read", read)
    for _ in range(3):
        report = bucket.run()
        assert [e.key for e in report.errors] == [KEY] and not report.ok
    assert bucket.sink() == []
    finish(bucket, "poison", recs, "fails every run, reported each time (exit 1); the object "
           "stays unprocessed in the source until fixed", held=ids(recs))


def test_lookup_timeout(bucket: Bucket, monkeypatch: pytest.MonkeyPatch):
    recs = orders(N)
    bucket.put(KEY, ndjson(recs))
    real = local_lookup.FolderLookup.__call__
    calls = {"n": 0}

    def slow(self, table, keys):
        calls["n"] += 1
        if calls["n"] == 1:
            raise local_lookup.LookupUnavailable(f"lookup table {table!r}: timed out")
        return real(self, table, keys)

    monkeypatch.setattr(local_lookup.FolderLookup, "__call__", slow)
    report = bucket.run()
    assert "timed out" in report.errors[0].error and bucket.sink() == []
    assert bucket.run().ok
    finish(bucket, "lookup-timeout", recs, "Retryable: object failed, next run wrote all")
