"""The engine: the accounting invariant as a property, retries of the failed subset only,
backoff, a sink that stays down, and errors that must fail the invocation.

Transforms here are small local functions, so these tests exercise the engine alone.
The sink is :class:`headwater.testing.doubles.FaultySink` (fault injection per record and per call).
"""

from __future__ import annotations

import io
import re
from collections import Counter, OrderedDict
from dataclasses import dataclass

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headwater.testing.doubles import FaultySink, MemoryDeadLetter, MemorySink
from runtimes.core.engine import Engine, RetryPolicy, SinkUnavailable, Step
from transforms.contract import Retryable

# -- the chain used by the property -----------------------------------------------------------


def act(record, ctx):
    """Step 0: what the record's ``kind`` asks for."""
    kind = record["kind"]
    if kind == "raise":
        raise ValueError(f"refused {record['id']}")
    if kind == "drop":
        return None
    if kind == "fan":
        return [{**record, "id": f"{record['id']}.{j}", "kind": "keep"} for j in range(record["n"])]
    if kind == "fan_bad":
        return [{"id": "never"}, 42]  # not all dicts: the input record is dead-lettered
    return record


def _check(records, ctx):
    return [ValueError(f"batch refused {r['id']}") if r["kind"] == "batch_fail" else r
            for r in records]


def check(record, ctx):  # pragma: no cover - the engine calls .batch instead
    raise AssertionError("the per-record form of a batch transform was called")


check.batch = _check


def stamp(record, ctx):
    """Step 2: the line the record came from (proves ctx.source follows the record)."""
    return {**record, "line": ctx.source.line}


STEPS = [Step.of(0, "act", act), Step.of(1, "check", check), Step.of(2, "stamp", stamp)]

KINDS = ["keep", "raise", "drop", "fan", "fan_empty", "fan_bad", "batch_fail"]
SINK_MODES = ["ok", "transient", "permanent", "late_permanent", "always"]


@dataclass
class Item:
    id: str
    kind: str  # one of KINDS, or "garbage" (not JSON) or "scalar" (JSON, not an object)
    sink: str = "ok"
    n: int = 0  # fan-out width, or failing attempts of a transient record


def _line(item: Item) -> bytes:
    if item.kind == "garbage":
        return b'{"id": "%s", oops' % item.id.encode()
    if item.kind == "scalar":
        return b'"%s"' % item.id.encode()
    kind = "fan" if item.kind == "fan_empty" else item.kind
    n = 0 if item.kind == "fan_empty" else item.n
    return orjson.dumps({"id": item.id, "kind": kind, "sink": item.sink, "n": n})


def _sink_verdict(record, attempt):
    mode = record.get("sink", "ok")
    if mode == "transient" and attempt <= record["n"]:
        return ("ServiceUnavailableException", f"busy {record['id']}", True)
    if mode == "permanent":
        return ("ValidationException", f"rejected {record['id']}", False)
    if mode == "late_permanent" and attempt >= 2:
        return ("ValidationException", f"rejected {record['id']} late", False)
    if mode in ("always", "late_permanent"):
        return ("ThrottlingException", f"throttled {record['id']}", True)
    return None


items_strategy = st.lists(
    st.tuples(
        st.sampled_from(KINDS + ["garbage", "scalar"]),
        st.sampled_from(SINK_MODES),
        st.integers(min_value=0, max_value=4),
    ),
    max_size=40,
).map(lambda rows: [Item(f"r{i}", k, s, n) for i, (k, s, n) in enumerate(rows)])


def _id_of_raw(raw: str) -> str:
    return re.search(r"r\d+", raw).group(0)


def _where_each_id_went(sink: FaultySink, dl: MemoryDeadLetter) -> dict[str, list[str]]:
    places: dict[str, list[str]] = {}
    for rec in sink.records:
        places.setdefault(rec["id"], []).append("sink")
    for e in dl.entries:
        rid = e["record"]["id"] if "record" in e else _id_of_raw(e["raw"])
        places.setdefault(rid, []).append("deadletter:" + e["step"])
    return places


def _expected(item: Item, max_attempts: int) -> dict[str, str]:
    """Where each id must end when the sink is never down as a whole."""
    if item.kind in ("garbage", "scalar"):
        return {item.id: "deadletter:decode"}
    if item.kind in ("raise", "fan_bad"):
        return {item.id: "deadletter:0:act"}
    if item.kind == "batch_fail":
        return {item.id: "deadletter:1:check"}
    if item.kind in ("drop", "fan_empty") or (item.kind == "fan" and item.n == 0):
        return {}
    ids = [f"{item.id}.{j}" for j in range(item.n)] if item.kind == "fan" else [item.id]
    ok = item.sink == "ok" or (item.sink == "transient" and item.n < max_attempts)
    return {i: "sink" if ok else "deadletter:sink" for i in ids}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=items_strategy,
    max_batch=st.integers(min_value=1, max_value=7),
    max_attempts=st.integers(min_value=1, max_value=4),
    down_calls=st.integers(min_value=0, max_value=3),
)
def test_every_record_is_written_dead_lettered_or_dropped(items, max_batch, max_attempts,
                                                          down_calls):
    down_calls = min(down_calls, max_attempts - 1)  # never down for a whole batch's attempts
    sink = FaultySink(max_batch, fail=_sink_verdict, down_calls=down_calls)
    dl = MemoryDeadLetter()
    delays: list[float] = []
    engine = Engine("prop", STEPS, sink, dl, retry=RetryPolicy(
        max_attempts=max_attempts, sleep=delays.append, rand=lambda: 1.0), fmt="ndjson")
    data = b"\n".join(_line(i) for i in items) + b"\n"

    c = engine.process_object(io.BytesIO(data), "in/objects.ndjson", "bkt")

    assert c.balanced(), c
    assert c.received == len(items)
    assert c.written == len(sink.records)
    assert c.dead_lettered == len(dl.entries)
    places = _where_each_id_went(sink, dl)
    assert all(len(p) == 1 for p in places.values()), places  # never in two places
    empty = [i for i in items if i.kind == "fan_empty" or (i.kind == "fan" and i.n == 0)]
    assert c.dropped == sum(i.kind == "drop" for i in items) + len(empty)
    assert c.fanned_out == sum(i.n - 1 for i in items if i.kind == "fan" and i.n)
    # every received id is somewhere or was dropped on purpose
    for item in items:
        expected = _expected(item, max_attempts)
        got = {k: v[0] for k, v in places.items()
               if k == item.id or k.startswith(item.id + ".")}
        if down_calls == 0:
            assert got == expected, (item, got)
        else:  # whole-call failures use up attempts: only the partition is certain
            assert set(got) == set(expected), (item, got)
    for rec in sink.records:
        assert rec["line"] == int(rec["id"][1:].split(".")[0]) + 1
    for e in dl.entries:
        assert e["pipeline"] == "prop" and e["source"] == {"bucket": "bkt",
                                                          "key": "in/objects.ndjson"}
        if e["step"] == "sink":
            assert 1 <= e["attempts"] <= max_attempts
        if e["step"] == "decode":
            assert "record" not in e and e["raw"]
    assert dl.objects == ([("bkt", "in/objects.ndjson")] if dl.entries else [])
    assert set(delays) <= {0.05, 0.1, 0.2}  # base 0.05 doubled per attempt, jitter 1.0


# -- retry of the failed subset ------------------------------------------------------------


def _engine(sink, dl=None, steps=(), **retry):
    retry.setdefault("sleep", lambda s: None)
    return Engine("orders", list(steps), sink, dl or MemoryDeadLetter(),
                  retry=RetryPolicy(**retry))


def test_only_the_failed_subset_is_retried():
    def fail(rec, attempt):
        if rec["i"] in (1, 3) and attempt == 1:
            return ("Throttled", "slow down", True)
        if rec["i"] == 3 and attempt == 2:
            return ("Throttled", "slow down", True)
        return None

    sink = FaultySink(max_batch=5, fail=fail)
    c = _engine(sink).process_records({"i": i} for i in range(7))
    assert sink.batches == [5, 2, 1, 2]  # batch of 5, its failed 2, then 1; then the last 2
    assert sorted(r["i"] for r in sink.records) == list(range(7))
    assert (c.written, c.retries, c.dead_lettered) == (7, 3, 0)


def test_backoff_is_capped_and_jittered():
    delays: list[float] = []
    jitter = iter([0.5, 0.25, 1.0, 0.1, 0.9])
    sink = FaultySink(max_batch=10, fail=lambda rec, a: ("Throttled", "busy", True))
    dl = MemoryDeadLetter()
    c = _engine(sink, dl, max_attempts=6, base_s=1.0, cap_s=3.0, sleep=delays.append,
                rand=lambda: next(jitter)).process_records([{"i": 0}])
    # caps: 1, 2, 3, 3, 3 (1 * 2**n capped at 3), each times its jitter draw
    assert delays == [0.5, 0.5, 3.0, 0.30000000000000004, 2.7]
    assert sink.batches == [1] * 6
    assert c.dead_lettered == 1 and c.retries == 5
    [entry] = dl.entries
    assert (entry["step"], entry["error_type"], entry["attempts"]) == ("sink", "Throttled", 6)
    assert entry["record"] == {"i": 0}


def test_a_sink_down_for_every_attempt_fails_the_invocation():
    sink = FaultySink(max_batch=10, down_calls=10**6)
    dl = MemoryDeadLetter()
    delays: list[float] = []
    engine = _engine(sink, dl, max_attempts=3, sleep=delays.append, rand=lambda: 1.0)
    with pytest.raises(SinkUnavailable) as err:
        engine.process_records({"i": i} for i in range(4))
    assert str(err.value) == ("pipeline 'orders': sink failed 3 times for 4 records of '': "
                              "ConnectionError: sink unavailable (call 3)")
    assert isinstance(err.value.__cause__, ConnectionError)
    assert sink.calls == 3 and len(delays) == 2
    assert dl.entries == [] and dl.objects == []  # nothing dead-lettered for it


def test_a_sink_that_recovers_writes_everything():
    sink = FaultySink(max_batch=10, down_calls=2)
    c = _engine(sink, max_attempts=3).process_records({"i": i} for i in range(4))
    assert (c.written, c.dead_lettered, c.retries) == (4, 0, 8)
    assert sink.batches == [4, 4, 4]


def test_non_retryable_failure_is_dead_lettered_with_its_attempts():
    def fail(rec, attempt):
        if rec["i"] == 0:
            return ("ValidationException", "bad column", False)
        if rec["i"] == 1:
            return ("Throttled", "busy", True) if attempt == 1 else ("ValidationException",
                                                                      "bad row", False)
        return None

    sink = FaultySink(max_batch=10, fail=fail)
    dl = MemoryDeadLetter()
    c = _engine(sink, dl).process_records({"i": i} for i in range(3))
    assert [r["i"] for r in sink.records] == [2]
    by = {e["record"]["i"]: e for e in dl.entries}
    assert (by[0]["error_type"], by[0]["message"], by[0]["attempts"]) == (
        "ValidationException", "bad column", 1)
    assert (by[1]["message"], by[1]["attempts"]) == ("bad row", 2)
    assert by[0]["line"] == 1 and by[1]["line"] == 2
    assert sink.batches == [3, 1]
    assert c.balanced() and c.dead_lettered == 2


# -- errors that must fail the invocation -----------------------------------------------------


def test_retryable_from_a_transform_propagates():
    def flaky(record, ctx):
        if record["i"] == 2:
            raise Retryable("lookup store throttled")
        return record

    dl = MemoryDeadLetter()
    sink = MemorySink()
    with pytest.raises(Retryable, match="lookup store throttled"):
        _engine(sink, dl, [Step.of(0, "flaky", flaky)]).process_records(
            {"i": i} for i in range(5))
    assert dl.entries == [] and sink.records == []


def test_retryable_from_a_batch_transform_or_a_fan_out_propagates():
    def enrich(record, ctx):  # pragma: no cover - batch form used
        raise AssertionError

    def enrich_batch(records, ctx):
        raise Retryable("BatchGetItem throttled")

    enrich.batch = enrich_batch

    def fan(record, ctx):
        yield record
        raise Retryable("stream broke")

    for step in (Step.of(0, "enrich", enrich), Step.of(0, "fan", fan)):
        dl = MemoryDeadLetter()
        with pytest.raises(Retryable):
            _engine(MemorySink(), dl, [step]).process_records([{"i": 1}])
        assert dl.entries == []


def test_a_dead_letter_writer_that_raises_propagates():
    class BrokenDeadLetter:
        def write(self, pipeline, bucket, key, entries):
            raise PermissionError("AccessDenied on deadletter/")

    def boom(record, ctx):
        raise ValueError("nope")

    engine = _engine(MemorySink(), BrokenDeadLetter(), [Step.of(0, "boom", boom)])
    with pytest.raises(PermissionError, match="AccessDenied"):
        engine.process_records([{"i": 1}])


# -- the chain ------------------------------------------------------------------------------


def test_batch_transform_is_called_once_per_chunk():
    sizes: list[int] = []

    def tag(record, ctx):  # pragma: no cover - batch form used
        raise AssertionError

    def tag_batch(records, ctx):
        sizes.append(len(records))
        return [{**r, "tagged": True} for r in records]

    tag.batch = tag_batch
    sink = MemorySink(max_batch=700)
    data = b"".join(orjson.dumps({"i": i}) + b"\n" for i in range(2500))
    c = _engine(sink, steps=[Step.of(0, "tag", tag)]).process_object(
        io.BytesIO(data), "x.ndjson")
    assert sizes == [1000, 1000, 500]
    assert c.written == 2500 and all(r["tagged"] for r in sink.records)
    assert sink.calls == 4  # 700-record sink batches across chunk boundaries


def test_batch_transform_returning_the_wrong_count_dead_letters_the_batch():
    def short(record, ctx):  # pragma: no cover
        raise AssertionError

    short.batch = lambda records, ctx: records[:-1]
    dl = MemoryDeadLetter()
    c = _engine(MemorySink(), dl, [Step.of(3, "short", short)]).process_records(
        {"i": i} for i in range(3))
    assert c.dead_lettered == 3 and c.balanced()
    assert {e["message"] for e in dl.entries} == {
        "step 3 (short): batch returned 2 results for 3 records"}


def test_transform_error_dead_letter_carries_step_record_and_raw():
    def boom(record, ctx):
        raise KeyError("user_id")

    dl = MemoryDeadLetter()
    data = b'{"a":1}\n{"a":2}\n'
    _engine(MemorySink(), dl, [Step.of(4, "boom", boom)]).process_object(
        io.BytesIO(data), "k.ndjson", "b")
    first = dl.entries[0]
    assert first["step"] == "4:boom" and first["error_type"] == "KeyError"
    assert first["message"] == "'user_id'"
    assert first["record"] == {"a": 1} and first["raw"] == '{"a":1}'
    assert [e["line"] for e in dl.entries] == [1, 2]


def test_a_dict_subclass_result_is_a_record():
    def ordered(record, ctx):
        return OrderedDict(record, seen=True)

    sink = MemorySink()
    c = _engine(sink, steps=[Step.of(0, "ordered", ordered)]).process_records([{"i": 1}])
    assert (c.written, c.dead_lettered) == (1, 0)
    assert sink.records == [{"i": 1, "seen": True}]


def test_counters_add_and_as_dict():
    a = _engine(MemorySink()).process_records([{"i": 1}])
    b = _engine(MemorySink()).process_records([{"i": 1}, {"i": 2}])
    a.add(b)
    d = a.as_dict()
    assert (d["received"], d["written"]) == (3, 3)
    assert Counter(k for k in d) == Counter(["received", "written", "dropped", "dead_lettered",
                                             "fanned_out", "retries", "seconds",
                                             "skipped_objects", "undecodable_objects",
                                             "resumed_outputs", "sink_seconds"])
