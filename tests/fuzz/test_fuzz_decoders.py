"""Hypothesis properties of every decoder (ndjson, json, csv, parquet; gzip or not),
through the engine as the runtimes call it.

- Arbitrary bytes under any name never raise out of ``Engine.process_object``: they give
  records, dead-letter entries (each with its input), or one entry for an undecodable
  object, and the counters balance.
- Valid records mixed with arbitrary damage all come out, in order and unchanged; the
  damage is dead-lettered, never merged into a record.
- Any prefix of a gzip stream gives a prefix of its records, and an entry when cut.
"""

from __future__ import annotations

import csv
import gzip
import io
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headwater.testing.doubles import MemoryDeadLetter, MemorySink
from runtimes.core.engine import Engine
from runtimes.core.formats import DecodeError, decode

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAMES = ["o.ndjson", "o.json", "o.csv", "o.parquet", "o.ndjson.gz", "o.json.gz", "o.csv.gz",
         "o.txt", "dir/", "o.jsonl"]

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=10)
# `_headwater_id` is the engine's: it stamps every record with its source's id (hypothesis
# also draws the literals of the code under test, so it does try that key)
records = st.lists(st.dictionaries(text.filter(lambda k: k != "_headwater_id"), values,
                                   min_size=1, max_size=4), max_size=12)


def run(data: bytes, key: str):
    sink, dl = MemorySink(max_batch=5), MemoryDeadLetter()
    c = Engine("fuzz", [], sink, dl, stamp_ids=True).process_object(io.BytesIO(data), key)
    return c, sink.records, dl.entries


@FUZZ
@given(st.binary(max_size=600), st.sampled_from(NAMES))
def test_arbitrary_bytes_never_escape_the_engine(data, key):
    c, written, entries = run(data, key)
    assert c.balanced()
    assert c.received == len(written) + len(entries) - c.undecodable_objects
    for e in entries:
        assert e["error_type"] and e["message"]
        assert e["step"] == "object" or "raw" in e


@FUZZ
@given(st.binary(max_size=600), st.sampled_from(["ndjson", "json", "csv", "parquet"]))
def test_decode_raises_only_decode_error(data, fmt):
    try:
        for chunk in decode(io.BytesIO(data), fmt, "o"):
            assert len(chunk.records) == len(chunk.lines)
    except DecodeError:
        pass


junk = st.sampled_from([b"{", b"nope", b"[1]", b"\xff\xfe", b'{"a": NaN}', b"42", b"}{"])


@FUZZ
@given(records, st.lists(st.tuples(st.integers(min_value=0), junk), max_size=4), st.booleans())
def test_ndjson_keeps_every_valid_record_in_order_and_deadletters_the_damage(recs, bad, gz):
    lines = [json.dumps(r).encode() for r in recs]
    for pos, j in bad:
        lines.insert(pos % (len(lines) + 1), j)
    data = b"\n".join(lines) + b"\n"
    if gz:
        data = gzip.compress(data, mtime=0)
    c, written, entries = run(data, "o.ndjson.gz" if gz else "o.ndjson")
    assert [{k: v for k, v in r.items() if k != "_headwater_id"} for r in written] == recs
    assert len(entries) == len(bad)


@FUZZ
@given(records)
def test_json_array_keeps_every_record(recs):
    c, written, entries = run(json.dumps(recs).encode(), "o.json")
    assert [{k: v for k, v in r.items() if k != "_headwater_id"} for r in written] == recs
    assert entries == []


@FUZZ
@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\x00"),
                        min_size=1, max_size=8), min_size=1, max_size=4, unique=True),
       st.lists(st.lists(st.text(st.characters(blacklist_categories=("Cs",),
                                               blacklist_characters="\x00"), max_size=10),
                         min_size=1), max_size=10))
def test_csv_keeps_every_row_of_the_header_width_and_deadletters_the_others(header, rows):
    buf = io.StringIO()
    w = csv.writer(buf)  # CRLF: a field holding \r or \n is quoted
    w.writerow(header)
    w.writerows(rows)
    c, written, entries = run(buf.getvalue().encode(), "o.csv")
    good = [r for r in rows if len(r) == len(header) and not (len(r) == 1 and not r[0].strip())]
    assert [[rec[h] for h in header] for rec in written] == good
    assert c.balanced() and len(written) + len(entries) == c.received


@FUZZ
@given(records.filter(bool), st.data())
def test_any_prefix_of_a_gzip_stream_gives_a_prefix_of_its_records(recs, data):
    body = gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in recs), mtime=0)
    cut = data.draw(st.integers(min_value=1, max_value=len(body)))
    c, written, entries = run(body[:cut], "o.ndjson.gz")
    got = [{k: v for k, v in r.items() if k != "_headwater_id"} for r in written]
    assert got == recs[:len(got)]
    assert c.balanced()
    if cut < len(body) - 8:  # the stream was cut before its end: an entry says so
        assert entries or c.undecodable_objects
