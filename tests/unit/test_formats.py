"""Streaming decoders on edge cases: empty input, BOM, CRLF, damaged gzip, invalid UTF-8,
JSON arrays streamed element by element, CSV quirks, Parquet, oversize records, and
memory that stays flat on a ~100 MB object produced lazily."""

from __future__ import annotations

import base64
import gzip
import io
import tracemalloc
import zlib

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import runtimes.core.formats as formats
from headwater.testing.doubles import MemoryDeadLetter, MemorySink
from runtimes.core.engine import Engine
from runtimes.core.formats import DecodeError, decode


def run(data: bytes, key: str = "x.ndjson", **kw):
    """Decode ``data``; return (records, lines, bad) over all chunks."""
    records, lines, bad = [], [], []
    for chunk in decode(io.BytesIO(data), key=key, **kw):
        records += chunk.records
        lines += chunk.lines
        bad += chunk.bad
    return records, lines, bad


def ndjson(n: int, start: int = 0) -> bytes:
    return b"".join(orjson.dumps({"i": i}) + b"\n" for i in range(start, start + n))


class CountingReader(io.RawIOBase):
    """A reader over a generator of byte pieces that counts what has been read."""

    def __init__(self, pieces) -> None:
        self._pieces = iter(pieces)
        self._buf = b""
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._buf:
            piece = next(self._pieces, None)
            if piece is None:
                return 0
            self._buf = piece
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        self.bytes_read += n
        return n


# -- empty, BOM, CRLF ----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["e.ndjson", "e.json", "e.csv", "e.ndjson.gz", "e.json.gz"])
def test_an_empty_object_holds_no_records(key):
    data = gzip.compress(b"") if key.endswith(".gz") else b""
    assert run(data, key) == ([], [], [])


def test_whitespace_only_objects_hold_no_records():
    assert run(b"\n\r\n  \n", "w.ndjson") == ([], [], [])
    assert run(b"  \n\t ", "w.json") == ([], [], [])


@pytest.mark.parametrize("key", ["b.ndjson", "b.json"])
def test_bom_and_crlf(key):
    body = b'{"a":1}\r\n{"a":2}\r\n' if key.endswith("ndjson") else b'[{"a":1},\r\n{"a":2}]\r\n'
    records, lines, bad = run(b"\xef\xbb\xbf" + body, key)
    assert records == [{"a": 1}, {"a": 2}] and lines == [1, 2] and bad == []


def test_bom_only_at_the_start_of_ndjson_is_skipped():
    records, _, bad = run(b'\xef\xbb\xbf{"a":1}\n\xef\xbb\xbf{"a":2}\n')
    assert records == [{"a": 1}]
    assert [(b.line, b.error_type) for b in bad] == [(2, "JSONDecodeError")]


# -- ndjson line errors -----------------------------------------------------------------------------


def test_bad_lines_are_reported_with_position_and_others_kept():
    data = b'{"a":1}\nnot json\n[1,2]\n\n{"a":2}\n{"a":3}'  # no newline at the end
    records, lines, bad = run(data)
    assert records == [{"a": 1}, {"a": 2}, {"a": 3}] and lines == [1, 5, 6]
    assert [(b.line, b.offset, b.raw, b.error_type) for b in bad] == [
        (2, 8, b"not json", "JSONDecodeError"),
        (3, 17, b"[1,2]", "NotAnObject"),
    ]
    assert bad[1].message == "expected a JSON object, got list"


def test_invalid_utf8_line_is_dead_lettered_with_raw_b64_and_others_kept():
    line = b'{"name":"caf\xe9"}'
    data = b'{"a":1}\n' + line + b'\n{"a":3}\n'
    sink, dl = MemorySink(), MemoryDeadLetter()
    c = Engine("p", [], sink, dl).process_object(io.BytesIO(data), "u.ndjson", "bkt")
    assert sink.records == [{"a": 1}, {"a": 3}]
    [entry] = dl.entries
    assert (entry["step"], entry["line"], entry["offset"]) == ("decode", 2, 8)
    assert entry["error_type"] == "JSONDecodeError"
    assert base64.b64decode(entry["raw_b64"]) == line  # the exact bytes, replayable
    assert entry["raw"] == '{"name":"caf\\xe9"}'
    assert c.balanced() and (c.received, c.written, c.dead_lettered) == (3, 2, 1)


def test_a_line_over_the_record_limit_is_refused(monkeypatch):
    monkeypatch.setattr(formats, "MAX_RECORD_BYTES", 64)
    big = orjson.dumps({"blob": "x" * 200})
    data = b'{"a":1}\n' + big + b'\n{"a":2}\nnope\n'
    for read_size in (1 << 20, 16):  # inside one read, and spread over many reads
        monkeypatch.setattr(formats, "READ_SIZE", read_size)
        records, lines, bad = run(data)
        assert records == [{"a": 1}, {"a": 2}] and lines == [1, 3]
        assert [(b.line, b.offset, b.error_type) for b in bad] == [
            (2, 8, "RecordTooLarge"), (4, 8 + len(big) + 1 + 8, "JSONDecodeError")]
        assert bad[0].message == f"record at line 2 is {len(big)} bytes, over the 64 byte limit"
        assert bad[0].raw == b""


def test_an_oversize_last_line_without_newline_is_refused(monkeypatch):
    monkeypatch.setattr(formats, "MAX_RECORD_BYTES", 64)
    monkeypatch.setattr(formats, "READ_SIZE", 32)
    records, _, bad = run(b'{"a":1}\n' + b'{"b":"' + b"y" * 300 + b'"}')
    assert records == [{"a": 1}]
    assert [(b.line, b.error_type) for b in bad] == [(2, "RecordTooLarge")]


@settings(max_examples=60, deadline=None)
@given(
    recs=st.lists(st.dictionaries(st.text(max_size=5), st.one_of(
        st.integers(-(2**63), 2**63 - 1), st.text(max_size=12), st.lists(st.text(max_size=4), max_size=3)),
        max_size=4), max_size=15),
    read_size=st.integers(min_value=1, max_value=64),
    crlf=st.booleans(),
)
def test_ndjson_round_trips_at_any_read_size(recs, read_size, crlf):
    end = b"\r\n" if crlf else b"\n"
    data = b"".join(orjson.dumps(r) + end for r in recs)
    old = formats.READ_SIZE
    formats.READ_SIZE = read_size
    try:
        records, lines, bad = run(data)
    finally:
        formats.READ_SIZE = old
    assert records == recs and bad == [] and lines == list(range(1, len(recs) + 1))


# -- gzip -------------------------------------------------------------------------------------------


def test_ndjson_gzip_by_suffix_and_by_magic_bytes():
    gz = gzip.compress(ndjson(5))
    assert run(gz, "a.ndjson.gz")[0] == [{"i": i} for i in range(5)]
    assert run(gz, "object-without-suffix", fmt="ndjson")[0] == [{"i": i} for i in range(5)]
    assert run(gz, "a.ndjson", compression="gzip")[0] == [{"i": i} for i in range(5)]


def test_multi_member_gzip_is_read_to_the_end():
    data = gzip.compress(ndjson(3)) + gzip.compress(ndjson(3, 3)) + gzip.compress(ndjson(3, 6))
    records, lines, bad = run(data, "m.ndjson.gz")
    assert records == [{"i": i} for i in range(9)] and bad == []
    assert lines == list(range(1, 10))


def test_gzip_with_trailing_zero_padding_is_clean():
    records, _, bad = run(gzip.compress(ndjson(4)) + b"\0" * 512, "p.ndjson.gz")
    assert len(records) == 4 and bad == []


def test_truncated_gzip_keeps_records_before_the_damage_and_names_the_line():
    full = gzip.compress(ndjson(2000), compresslevel=1)
    damaged = full[: len(full) // 2]
    records, lines, bad = run(damaged, "t.ndjson.gz")
    assert len(records) > 100
    assert records == [{"i": i} for i in range(len(records))]  # a clean prefix, in order
    [entry] = bad
    n = len(records)
    assert entry.error_type == "TruncatedInput"
    assert entry.line == n + 1
    assert entry.message.startswith(f"compressed input is truncated or corrupt after line {n}: "
                                    "EOFError")
    # the partial line at the damage is kept in the entry's raw bytes
    assert ndjson(1, n).startswith(entry.raw)


def test_truncated_gzip_through_the_engine_is_dead_lettered_not_lost():
    full = gzip.compress(ndjson(50))
    sink, dl = MemorySink(), MemoryDeadLetter()
    c = Engine("p", [], sink, dl).process_object(io.BytesIO(full[:-6]), "t.ndjson.gz", "b")
    assert c.balanced() and c.dead_lettered == 1
    assert dl.entries[0]["error_type"] == "TruncatedInput"
    assert dl.entries[0]["line"] == len(sink.records) + 1


def test_corrupt_gzip_body_is_a_truncated_input_entry():
    gz = bytearray(gzip.compress(ndjson(100)))
    gz[20:40] = b"\xff" * 20
    _, _, bad = run(bytes(gz), "c.ndjson.gz")
    assert [b.error_type for b in bad] == ["TruncatedInput"]
    assert "zlib.error" in bad[0].message or "error" in bad[0].message


def test_a_gz_key_that_is_not_gzip_is_a_decode_error():
    with pytest.raises(DecodeError, match="named or configured as gzip but is not gzip data"):
        run(b'{"a":1}\n', "fake.ndjson.gz")


def test_unknown_formats_are_decode_errors():
    with pytest.raises(DecodeError, match=r"cannot tell the format of 'x.bin': set source.format"):
        run(b"", "x.bin")
    with pytest.raises(DecodeError, match=r"unknown format 'xml'"):
        run(b"", "x.xml", fmt="xml")


def test_format_auto_follows_the_suffix():
    assert run(b'{"a":1}\n', "x.jsonl", fmt="auto")[0] == [{"a": 1}]
    assert run(b"a\n1\n", "x.csv.gz", compression="none")[0] == [{"a": "1"}]


# -- JSON ---------------------------------------------------------------------------------------------


def test_top_level_object_is_one_record():
    assert run(b' {"a": [1, {"b": "]"}]} \n', "o.json") == ([{"a": [1, {"b": "]"}]}], [1], [])


def test_a_large_gzipped_top_level_object_is_read_whole():
    doc = {"items": [f"{i:08x}-{i * 7919 % 1000003}" for i in range(200_000)]}
    records, _, bad = run(gzip.compress(orjson.dumps(doc)), "big.json.gz")
    assert bad == [] and records == [doc]


def test_a_top_level_scalar_is_not_a_record():
    _, _, bad = run(b"42", "s.json")
    assert [(b.error_type, b.message) for b in bad] == [
        ("NotAnObject", "expected a JSON object, got int")]


def test_array_elements_with_brackets_and_escaped_quotes_in_strings():
    data = (b'[{"s": "a]b}c{[d"}, {"q": "say \\"]\\" now", "n": [[1, [2]], {"x": "["}]},'
            b' {"bs": "end\\\\"}, {"e": "\\u005d"}]')
    records, lines, bad = run(data, "n.json")
    assert bad == []
    assert records == [{"s": "a]b}c{[d"}, {"q": 'say "]" now', "n": [[1, [2]], {"x": "["}]},
                       {"bs": "end\\"}, {"e": "]"}]
    assert lines == [1, 2, 3, 4]


def test_array_of_scalars_and_nested_arrays_reports_each_non_object():
    records, lines, bad = run(b'[1, "a,]", [{"x":1}], {"ok": true}, null]', "s.json")
    assert records == [{"ok": True}] and lines == [4]
    assert [(b.line, b.raw, b.error_type) for b in bad] == [
        (1, b"1", "NotAnObject"), (2, b'"a,]"', "NotAnObject"),
        (3, b'[{"x":1}]', "NotAnObject"), (5, b"null", "NotAnObject")]


def test_unclosed_array_keeps_complete_elements():
    records, _, bad = run(b'[{"a":1}, {"b":2', "u.json")
    assert records == [{"a": 1}]
    assert [(b.line, b.raw, b.message) for b in bad] == [
        (2, b'{"b":2', "JSON array is not closed: input ended inside an element")]
    records, _, bad = run(b'[{"a":1},', "u.json")
    assert records == [{"a": 1}]
    assert bad[0].message == "JSON array is not closed: missing ']'"


def test_an_element_that_does_not_parse_is_reported_and_the_rest_kept():
    records, _, bad = run(b'[{"a":1}, {"b":}, {"c":3}]', "e.json")
    assert records == [{"a": 1}, {"c": 3}]
    assert [(b.line, b.raw, b.error_type) for b in bad] == [(2, b'{"b":}', "JSONDecodeError")]


def test_an_array_element_over_the_limit_is_refused(monkeypatch):
    monkeypatch.setattr(formats, "MAX_RECORD_BYTES", 64)
    big = orjson.dumps({"blob": "z" * 100})
    records, _, bad = run(b'[{"a":1},' + big + b',{"a":2}]', "l.json")
    assert records == [{"a": 1}, {"a": 2}]
    assert [(b.line, b.error_type) for b in bad] == [(2, "RecordTooLarge")]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(alphabet='ab]["{}\\,: \n', max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.text(alphabet='k]"\\', max_size=3), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=80, deadline=None)
@given(
    recs=st.lists(st.dictionaries(st.text(alphabet='k]"{', max_size=3), json_values, max_size=3),
                  max_size=12),
    read_size=st.integers(min_value=1, max_value=50),
    pretty=st.booleans(),
)
def test_json_array_round_trips_at_any_read_size(recs, read_size, pretty):
    data = orjson.dumps(recs, option=orjson.OPT_INDENT_2 if pretty else 0)
    old = formats.READ_SIZE
    formats.READ_SIZE = read_size
    try:
        records, lines, bad = run(data, "r.json")
    finally:
        formats.READ_SIZE = old
    assert bad == [] and records == recs and lines == list(range(1, len(recs) + 1))


def test_a_json_array_of_100k_records_is_streamed():
    """The first chunk comes out long before the whole array has been read."""
    n = 100_000

    def pieces():
        yield b"["
        for i in range(n):
            yield (b"," if i else b"") + orjson.dumps({"i": i, "pad": "p" * 40})
        yield b"]"

    total = 2 + sum(len(orjson.dumps({"i": i, "pad": "p" * 40})) + 1 for i in range(n)) - 1
    reader = CountingReader(pieces())
    chunks = decode(reader, "json", "big.json", compression="none")
    first = next(chunks)
    assert len(first.records) == formats.CHUNK_RECORDS
    assert first.records[0] == {"i": 0, "pad": "p" * 40}
    assert reader.bytes_read < total // 10  # only a read or two of a ~5 MB array
    count = len(first.records) + sum(len(c.records) for c in chunks)
    assert count == n and reader.bytes_read == total


# -- CSV ------------------------------------------------------------------------------------------------


def test_csv_header_bom_quoted_newlines_and_short_rows():
    data = (b'\xef\xbb\xbfid,note,amount\r\n1,"two\r\nlines",3.5\r\n2,short\r\n'
            b'3,"has ""quotes"", and comma",7\r\n\r\n4,,\r\n')
    records, lines, bad = run(data, "c.csv")
    assert records == [
        {"id": "1", "note": "two\r\nlines", "amount": "3.5"},
        {"id": "3", "note": 'has "quotes", and comma', "amount": "7"},
        {"id": "4", "note": "", "amount": ""},
    ]
    assert lines == [3, 5, 7]  # the line where each row ends
    assert [(b.line, b.raw, b.error_type, b.message) for b in bad] == [
        (4, b"2,short", "CSVError", "row has 2 fields, the header has 3")]


def test_csv_with_another_delimiter_and_a_long_row():
    records, _, bad = run(b"a;b\n1;2\n3;4;5\n", "d.csv", csv_delimiter=";")
    assert records == [{"a": "1", "b": "2"}]
    assert bad[0].message == "row has 3 fields, the header has 2"


def test_csv_row_with_invalid_utf8_is_dead_lettered_with_its_bytes():
    records, _, bad = run(b"a,b\n1,\xff\xfe\n2,ok\n", "x.csv")
    assert records == [{"a": "2", "b": "ok"}]
    assert [(b.line, b.raw, b.error_type) for b in bad] == [(2, b"1,\xff\xfe",
                                                            "UnicodeDecodeError")]


def test_csv_gzip_and_header_only():
    assert run(gzip.compress(b"a,b\n1,2\n"), "g.csv.gz")[0] == [{"a": "1", "b": "2"}]
    assert run(b"a,b\r\n", "h.csv") == ([], [], [])


def test_csv_repeated_header_names_are_renamed_and_keep_every_value():
    records, _, bad = run(b"id,name,name,name\n1,a,b,c\n", "dup.csv")
    assert records == [{"id": "1", "name": "a", "name_2": "b", "name_3": "c"}]
    assert bad == []


def test_csv_renamed_header_skips_a_name_a_real_column_already_has():
    # name_2 is a real column, so the second 'name' becomes name_3; nothing is overwritten
    records, _, _ = run(b"name,name,name_2\na,b,c\n", "dup.csv")
    assert records == [{"name": "a", "name_3": "b", "name_2": "c"}]


def test_csv_header_renaming_is_deterministic_across_chunks():
    data = b"k,k\n" + b"".join(b"%d,%d\n" % (i, -i) for i in range(5))
    records, _, _ = run(data, "dup.csv", chunk_records=2)
    assert records == [{"k": str(i), "k_2": str(-i)} for i in range(5)]


# -- Parquet ------------------------------------------------------------------------------------------


def test_parquet_via_pyarrow():
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table({"id": list(range(2500)), "name": [f"n{i}" for i in range(2500)]})
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=700)
    chunks = list(decode(io.BytesIO(buf.getvalue()), key="t.parquet"))
    assert [len(c.records) for c in chunks] == [1000, 1000, 500]
    records = [r for c in chunks for r in c.records]
    assert records[0] == {"id": 0, "name": "n0"} and records[-1] == {"id": 2499, "name": "n2499"}
    assert [ln for c in chunks for ln in c.lines] == list(range(1, 2501))


def test_a_damaged_parquet_file_is_one_bad_entry():
    pytest.importorskip("pyarrow")
    _, _, bad = run(b"PAR1 this is not parquet", "bad.parquet")
    assert len(bad) == 1 and bad[0].message.startswith("not a readable Parquet file")


# -- memory --------------------------------------------------------------------------------------------


def test_memory_stays_flat_on_a_100_mb_ndjson_object():
    """~100 MB produced lazily; the decoder's peak allocation stays far below that."""
    line = orjson.dumps({"id": 0, "payload": "x" * 950}) + b"\n"
    target = 100 * 1024 * 1024
    count = target // len(line)
    block = line * 64

    def pieces():
        for _ in range(count // 64):
            yield block

    reader = CountingReader(pieces())
    seen = 0
    tracemalloc.start()
    try:
        for chunk in decode(reader, "ndjson", "big.ndjson", compression="none"):
            seen += len(chunk.records)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == (count // 64) * 64
    assert reader.bytes_read >= 99 * 1024 * 1024
    assert peak < 12 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB for a 100 MiB object"


def test_memory_stays_flat_on_a_gzipped_json_array():
    """Decompression and the array scanner keep only bounded pieces too."""
    element = orjson.dumps({"id": 1, "payload": "y" * 2000})
    n = 12_000
    comp = zlib.compressobj(wbits=31)
    parts = [comp.compress(b"[")]
    for i in range(n):
        parts.append(comp.compress((b"," if i else b"") + element))
    parts.append(comp.compress(b"]") + comp.flush())
    gz = b"".join(parts)  # ~24 MB of JSON, small compressed
    tracemalloc.start()
    try:
        # small chunks, so that what is measured is the decoder, not one chunk of records
        seen = sum(len(c.records) for c in decode(io.BytesIO(gz), key="a.json.gz",
                                                  chunk_records=100))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == n
    assert peak < 8 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB for 24 MiB of JSON"
