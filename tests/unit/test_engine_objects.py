"""The engine on whole objects: folder placeholders, objects that can never be decoded,
read errors, the stable ``_headwater_id`` of every row, and resuming a redelivered object
after the records an earlier attempt settled (checkpoints)."""

from __future__ import annotations

import gzip
import io
import re

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headwater.testing.doubles import MemoryDeadLetter, MemorySink
from runtimes.core.engine import ID_FIELD, Checkpoint, Engine, RetryPolicy, Step


def refuse_bad(record, ctx):
    if record.get("bad"):
        raise ValueError(f"refused {record['id']}")
    return record


def twice_if_asked(record, ctx):
    return [record, {**record, "copy": True}] if record.get("fan") else record


STEPS = [Step.of(0, "refuse_bad", refuse_bad), Step.of(1, "twice", twice_if_asked)]


def engine(sink=None, dl=None, fmt="auto", batch=3, **kw) -> tuple[Engine, MemorySink,
                                                                    MemoryDeadLetter]:
    sink = sink or MemorySink(max_batch=batch)
    dl = dl or MemoryDeadLetter()
    eng = Engine("orders", STEPS, sink, dl, fmt=fmt, stamp_ids=True,
                 retry=RetryPolicy(max_attempts=1, sleep=lambda s: None), **kw)
    return eng, sink, dl


def ndjson(*records) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def test_folder_placeholder_is_skipped_without_a_dead_letter():
    eng, sink, dl = engine()
    c = eng.process_object(io.BytesIO(b""), "raw/orders/2024/05/", "lake")
    assert (c.skipped_objects, c.undecodable_objects, c.received) == (1, 0, 0)
    assert sink.records == [] and dl.entries == []


def test_key_ending_in_slash_with_bytes_is_not_a_placeholder():
    eng, sink, dl = engine(fmt="ndjson")
    c = eng.process_object(io.BytesIO(ndjson({"id": 1})), "raw/orders/odd/", "lake")
    assert (c.skipped_objects, c.written) == (0, 1)


@pytest.mark.parametrize(("key", "body", "fmt", "reason"), [
    ("raw/orders/_SUCCESS", b"", "auto", "cannot tell the format"),
    ("raw/orders/photo.jpg", b"\xff\xd8\xff\xe0JFIF", "auto", "cannot tell the format"),
    ("raw/orders/day.ndjson.gz", b'{"id": 1}\n', "ndjson", "not gzip data"),
    ("raw/orders/day.ndjson", b"\x1f\x8bnot really gzip", "ndjson", "truncated or corrupt"),
])
def test_object_that_cannot_be_decoded_is_one_dead_letter_entry(key, body, fmt, reason):
    eng, sink, dl = engine(fmt=fmt)
    c = eng.process_object(io.BytesIO(body), key, "lake", "v1")
    assert sink.records == []
    (entry,) = dl.entries
    assert entry["source"] == {"bucket": "lake", "key": key, "version": "v1"}
    assert reason in entry["message"]
    if entry["step"] == "object":  # the object as a whole
        assert c.undecodable_objects == 1 and c.received == 0
    else:  # gzip magic but damaged: the damage is one decode entry at line 1
        assert entry["step"] == "decode" and c.dead_lettered == 1


class ResetAfter(io.RawIOBase):
    """A stream whose connection resets after ``n`` bytes."""

    def __init__(self, data: bytes, n: int) -> None:
        self.data, self.n, self.pos = data, n, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self.pos >= self.n:
            raise ConnectionResetError("connection reset by peer")
        chunk = self.data[self.pos:min(self.n, self.pos + len(b))]
        b[:len(chunk)] = chunk
        self.pos += len(chunk)
        return len(chunk)


@pytest.mark.parametrize("gz", [False, True])
def test_read_error_midway_fails_the_object_and_dead_letters_nothing(gz):
    data = ndjson(*({"id": i} for i in range(5000)))
    key = "raw/orders/day.ndjson"
    if gz:
        data, key = gzip.compress(data), key + ".gz"
    eng, sink, dl = engine(fmt="ndjson")
    with pytest.raises(ConnectionResetError):
        eng.process_object(io.BufferedReader(ResetAfter(data, len(data) // 2)), key, "lake")
    assert dl.entries == []


def test_row_ids_are_stable_distinct_per_fan_out_and_change_with_the_version():
    body = ndjson({"id": 1}, {"id": 2, "fan": True}, {"id": 3})
    runs = []
    for version in ("v1", "v1", "v2"):
        eng, sink, _ = engine()
        eng.process_object(io.BytesIO(body), "raw/a.ndjson", "lake", version)
        runs.append([r[ID_FIELD] for r in sink.records])
    assert runs[0] == runs[1]
    assert len(set(runs[0])) == 4
    assert [i.split("-", 1)[1] for i in runs[0]] == ["1-0", "2-0", "2-1", "3-0"]
    assert all(re.fullmatch(r"[0-9a-f]{20}-\d+-\d+", i) for i in runs[0])
    assert not set(runs[0]) & set(runs[2])


class DiesAfter(MemorySink):
    """Accepts ``calls`` batches, then the sink is down for good (this attempt)."""

    def __init__(self, max_batch: int, calls: int) -> None:
        super().__init__(max_batch)
        self.left = calls

    def write(self, records):
        if self.left <= 0:
            raise ConnectionError("sink down")
        self.left -= 1
        return super().write(records)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flags=st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=40),
       batch=st.integers(1, 6), survive=st.integers(0, 8))
def test_resume_after_a_failure_mid_object_writes_each_record_once_and_loses_none(
        flags, batch, survive):
    """Attempt 1 dies after ``survive`` batches; attempt 2 resumes from the last checkpoint.
    Every output is in the sink exactly once, every refused record is dead-lettered exactly
    once, across both attempts."""
    records = [{"id": i, "bad": bad, "fan": fan} for i, (bad, fan) in enumerate(flags)]
    body = ndjson(*records)
    written: list[dict] = []
    dl = MemoryDeadLetter()
    saved: list[Checkpoint] = []

    first = DiesAfter(batch, survive)
    eng, _, _ = engine(sink=first, dl=dl, fmt="ndjson")
    try:
        eng.process_object(io.BytesIO(body), "raw/a.ndjson", "lake", "v1",
                           checkpoint=saved.append)
    except Exception:
        pass  # the platform redelivers
    written += first.records

    again = MemorySink(batch)
    eng2, _, _ = engine(sink=again, dl=dl, fmt="ndjson")
    eng2.process_object(io.BytesIO(body), "raw/a.ndjson", "lake", "v1",
                        resume=saved[-1] if saved else None, checkpoint=saved.append)
    written += again.records

    ids = [r[ID_FIELD] for r in written]
    assert len(ids) == len(set(ids))  # no duplicates
    good = [r for r in records if not r["bad"]]
    assert len(written) == sum(2 if r["fan"] else 1 for r in good)  # none lost
    refused = sorted(e["record"]["id"] for e in dl.entries if e["step"] == "0:refuse_bad")
    assert refused == [r["id"] for r in records if r["bad"]]  # each exactly once
