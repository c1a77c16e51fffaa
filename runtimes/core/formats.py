"""Streaming decoders: bytes of one object in, chunks of records out.

Every decoder reads its input in bounded pieces, so memory stays flat however large the
object is (a 1 GB ndjson object is never read at once). A piece of input that cannot
be decoded becomes a :class:`Bad` entry carrying its position and raw bytes, and
decoding goes on: one bad line never costs the rest of the object.

Formats: ``json`` (one object, or an array of objects, streamed element by element),
``ndjson``, ``csv`` (header row), ``parquet`` (pyarrow, imported only when used).
Compression: gzip by ``.gz`` suffix or magic bytes. Text: UTF-8 with or without BOM,
LF or CRLF line ends.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

__all__ = ["Bad", "Chunk", "CSVLines", "DecodeError", "decode", "format_of", "is_gzip",
           "open_stream", "prepend", "unique_header"]

READ_SIZE = 1 << 20  # 1 MiB reads
CHUNK_RECORDS = 1000
MAX_RECORD_BYTES = 8 << 20  # one record (line / array element) larger than this is refused
BOM = codecs.BOM_UTF8
GZIP_MAGIC = b"\x1f\x8b"


# Damage in the data itself. A read error of the underlying stream (connection reset,
# timeout) is not damage: it propagates, so the platform redelivers the object.
_DAMAGE = (EOFError, zlib.error)


class DecodeError(ValueError):
    """The object as a whole cannot be decoded (unknown format, not gzip ...)."""


@dataclass(slots=True)
class Bad:
    """A piece of input that did not decode into a record."""

    line: int
    offset: int
    raw: bytes
    error_type: str
    message: str


@dataclass(slots=True)
class Chunk:
    """Up to ``CHUNK_RECORDS`` decoded records with their positions.

    ``lines[i]`` is the 1-based line (ndjson, csv), element index (json) or row
    number (parquet) of ``records[i]``; ``raws[i]`` its source text when the format has
    one (ndjson), kept so a dead-letter can carry the input exactly as it arrived.
    """

    records: list[dict[str, Any]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    raws: list[bytes] | None = None
    bad: list[Bad] = field(default_factory=list)


class _Prefixed(io.RawIOBase):
    """A reader that serves ``head`` before the rest of ``stream`` (for magic sniffing)."""

    def __init__(self, head: bytes, stream: IO[bytes]) -> None:
        self._head = head
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        view = memoryview(b)
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._stream.read(len(view))
        n = len(data)
        view[:n] = data
        return n


def prepend(head: bytes, stream: IO[bytes]) -> IO[bytes]:
    """``stream`` with ``head`` (bytes already read from it) served first."""
    return io.BufferedReader(_Prefixed(head, stream), READ_SIZE)  # type: ignore[return-value]


def open_stream(stream: IO[bytes], key: str = "", compression: str = "auto") -> IO[bytes]:
    """Wrap ``stream`` in a gzip reader when the key or the first bytes say gzip."""
    if compression == "none":
        return stream
    head = stream.read(2)
    rest: IO[bytes] = io.BufferedReader(_Prefixed(head, stream), READ_SIZE)
    if is_gzip(key, head, compression):
        if head and head != GZIP_MAGIC:
            raise DecodeError(f"{key or 'object'} is named or configured as gzip but is not gzip data")
        return _Gunzip(rest)  # type: ignore[return-value]  # short reads: data before damage is kept
    return rest


class _Gunzip(io.RawIOBase):
    """Streaming gunzip (multi-member) that hands out every byte that decompresses.

    Unlike ``gzip.GzipFile``, a truncated stream yields all data before the damage and
    only then raises ``EOFError``, so the records before it are still processed.
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._z = zlib.decompressobj(wbits=31)
        self._out = b""
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        view = memoryview(b)
        while not self._out and not self._done:
            if self._z.eof:
                # a member ended: what follows is another member, zero padding, or nothing
                raw = self._z.unused_data or self._stream.read(256 << 10)
                if not raw:
                    self._done = True
                    break
                data = raw.lstrip(b"\0")
                if not data:
                    self._z = _FinishedZ()  # zero padding: look at the next read
                    continue
                self._z = zlib.decompressobj(wbits=31)
            else:
                data = self._z.unconsumed_tail or self._stream.read(256 << 10)
                if not data:
                    self._done = True
                    raise EOFError("compressed input ended before the end-of-stream marker")
            self._out = self._z.decompress(data, len(view))
        n = min(len(view), len(self._out))
        view[:n] = self._out[:n]
        self._out = self._out[n:]
        return n


class _FinishedZ:
    eof = True
    unconsumed_tail = b""
    unused_data = b""

    def decompress(self, data: bytes, max_length: int = 0) -> bytes:
        return b""


def is_gzip(key: str, head: bytes, compression: str = "auto") -> bool:
    """True when an object is read as gzip: so configured, named ``.gz`` or starting with
    the gzip magic bytes (``head``: its first bytes)."""
    return compression != "none" and (compression == "gzip" or key.endswith(".gz")
                                      or head[:2] == GZIP_MAGIC)


def format_of(key: str, fmt: str = "auto") -> str:
    """The format an object is decoded as: ``fmt`` unless ``auto``, else told by the
    key's suffix (``.gz`` aside). Raises :class:`DecodeError` when the suffix says none."""
    if fmt and fmt != "auto":
        return fmt
    name = key.removesuffix(".gz")
    for ext, f in ((".ndjson", "ndjson"), (".jsonl", "ndjson"), (".json", "json"),
                   (".csv", "csv"), (".parquet", "parquet")):
        if name.endswith(ext):
            return f
    raise DecodeError(f"cannot tell the format of {key!r}: set source.format")


def decode(stream: IO[bytes], fmt: str = "", key: str = "", compression: str = "auto",
           *, chunk_records: int = CHUNK_RECORDS, csv_delimiter: str = ",") -> Iterator[Chunk]:
    """Decode one object into chunks of records; see the module docstring."""
    fmt = format_of(key, fmt)
    raw = open_stream(stream, key, compression)
    pos = _Position()
    if fmt == "ndjson":
        return _guard(_ndjson(raw, chunk_records, pos), pos)
    if fmt == "json":
        return _guard(_json(raw, chunk_records), pos)
    if fmt == "csv":
        return _guard(_csv(raw, chunk_records, csv_delimiter, pos), pos)
    if fmt == "parquet":
        return _guard(_parquet(raw, chunk_records), pos)
    raise DecodeError(f"unknown format {fmt!r}: use json, ndjson, csv or parquet")


class _Position:
    __slots__ = ("line", "offset", "pending")

    def __init__(self) -> None:
        self.line = 0
        self.offset = 0
        self.pending = b""


def _guard(gen: Iterator[Chunk], pos: _Position) -> Iterator[Chunk]:
    """Turn a truncated or corrupt compressed stream into a final :class:`Bad` entry.

    What decoded before the damage is kept; the entry says where the damage starts, so
    the dead-letter records it and nothing after it is silently dropped.
    """
    try:
        yield from gen
    except _DAMAGE as exc:
        line = pos.line + 1
        yield Chunk(bad=[Bad(line, pos.offset, pos.pending[:4096], "TruncatedInput",
                             f"compressed input is truncated or corrupt after line {line - 1}: "
                             f"{type(exc).__name__}: {exc}")])


def _oversize(pos: _Position, size: int) -> Bad:
    return Bad(pos.line, pos.offset, b"", "RecordTooLarge",
               f"record at line {pos.line} is {size} bytes, over the {MAX_RECORD_BYTES} byte limit")


# An integer literal of 19 or more digits may be beyond 64 bits, which orjson would turn
# into a float (silently changing the value). Lines holding one are parsed exactly.
_LONG_INT = re.compile(rb"(?<![\w.])-?\d{19,}(?![\w.])")
# A C-speed prefilter for it (a regex scan costs about three times orjson's parse of the
# same bytes): digits become '0', everything else ' ', then a run of 19 '0's is looked for.
_DIGITS = bytes(48 if 48 <= c <= 57 else 32 for c in range(256))
_NINETEEN = b"0" * 19


def _long_int(data: bytes) -> bool:
    """True when ``data`` holds an integer literal of 19 or more digits."""
    return (data.translate(_DIGITS).find(_NINETEEN) >= 0
            and _LONG_INT.search(data) is not None)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _exact(data: bytes, rec: Any) -> Any:
    """``rec`` (orjson's parse of ``data``), re-parsed with exact integers when ``data``
    holds an integer literal orjson may have rounded."""
    if not _long_int(data):
        return rec
    import json

    return json.loads(data, parse_constant=_reject_constant)


def _loads(data: bytes) -> Any:
    return _exact(data, orjson.loads(data))


def _ndjson(raw: IO[bytes], chunk_records: int, pos: _Position) -> Iterator[Chunk]:
    loads = _loads
    chunk = Chunk(raws=[])
    records, lines, raws, bad = chunk.records, chunk.lines, chunk.raws, chunk.bad
    rest = b""
    skipping = 0  # bytes of an oversize line being skipped
    first = True
    read = raw.read
    while True:
        try:
            data = read(READ_SIZE)
        except _DAMAGE:
            if records or bad:
                yield chunk  # what decoded before the damage still counts
            raise
        if first:
            first = False
            if data.startswith(BOM):
                data = data[3:]
                pos.offset = 3
        if not data:
            if skipping:
                pos.line += 1
                bad.append(_oversize(pos, skipping))
                rest = b""
            parts = [rest] if rest.strip() else []
            rest = b""
        else:
            if skipping:
                nl = data.find(b"\n")
                if nl < 0:
                    skipping += len(data)
                    continue
                pos.line += 1
                bad.append(_oversize(pos, skipping + nl))  # pos.offset: start of that line
                pos.offset += skipping + nl + 1
                skipping = 0
                data = data[nl + 1:]
            parts = (rest + data).split(b"\n") if rest else data.split(b"\n")
            rest = parts.pop()
            if len(rest) > MAX_RECORD_BYTES:
                skipping = len(rest)
                rest = b""
        pos.pending = rest
        # one scan per read keeps the fast path; parts[0] may straddle the previous read
        long_ints = _long_int(data) or (bool(parts) and _long_int(parts[0]))
        line = pos.line
        offset = pos.offset
        j = 0
        while j < len(parts):
            # A piece fills the current chunk at most. Fast path: every line of the piece
            # is an object, decoded in one C-level map; otherwise it goes line by line.
            piece = parts[j:j + chunk_records - len(records)]
            j += len(piece)
            size = sum(map(len, piece))
            try:
                recs = (list(map(orjson.loads, piece))
                        if size <= MAX_RECORD_BYTES and not long_ints else None)
            except orjson.JSONDecodeError:
                recs = None
            if recs is not None and set(map(type, recs)) <= _DICT_ONLY:
                records.extend(recs)
                lines.extend(range(line + 1, line + 1 + len(piece)))
                raws.extend(piece)  # type: ignore[union-attr]
                line += len(piece)
                offset += size + len(piece)
            else:
                for part in piece:
                    line += 1
                    size = len(part) + 1
                    if size > MAX_RECORD_BYTES + 1:  # a whole line inside one read is limited too
                        bad.append(Bad(line, offset, b"", "RecordTooLarge",
                                       f"record at line {line} is {size - 1} bytes, "
                                       f"over the {MAX_RECORD_BYTES} byte limit"))
                        offset += size
                        continue
                    try:
                        rec = loads(part)
                    except orjson.JSONDecodeError as exc:
                        stripped = part.strip()
                        if not stripped:
                            offset += size
                            continue
                        bad.append(Bad(line, offset, part, "JSONDecodeError", str(exc)))
                        offset += size
                        continue
                    if type(rec) is dict:
                        records.append(rec)
                        lines.append(line)
                        raws.append(part)  # type: ignore[union-attr]
                    else:
                        bad.append(Bad(line, offset, part, "NotAnObject",
                                       f"expected a JSON object, got {type(rec).__name__}"))
                    offset += size
            if len(records) >= chunk_records:
                pos.line, pos.offset = line, offset
                yield chunk
                chunk = Chunk(raws=[])
                records, lines, raws, bad = chunk.records, chunk.lines, chunk.raws, chunk.bad
        pos.line, pos.offset = line, offset
        if not data:
            break
    if records or bad:
        yield chunk


_DICT_ONLY = frozenset((dict,))

_STRUCT = re.compile(rb'["{}\[\]]')
_STRING_END = re.compile(rb'(?:[^"\\]|\\.)*"', re.S)
_WS = b" \t\r\n"


def _json(raw: IO[bytes], chunk_records: int) -> Iterator[Chunk]:
    """A top-level object is one record; a top-level array is streamed element by element."""
    buf = raw.read(READ_SIZE)
    if buf.startswith(BOM):
        buf = buf[3:]
    i = 0
    while True:
        while i < len(buf) and buf[i] in _WS:
            i += 1
        if i < len(buf):
            break
        more = raw.read(READ_SIZE)
        if not more:
            return  # an empty object holds no records
        buf, i = buf[i:] + more, 0
    if buf[i:i + 1] != b"[":
        # a single document: bounded by MAX_RECORD_BYTES
        # a gzip reader returns short reads: read until EOF or just past the limit
        parts, size = [buf[i:]], len(buf) - i
        while size <= MAX_RECORD_BYTES:
            more = raw.read(MAX_RECORD_BYTES + 1 - size)
            if not more:
                break
            parts.append(more)
            size += len(more)
        data = b"".join(parts)
        if len(data) > MAX_RECORD_BYTES:
            yield Chunk(bad=[Bad(1, 0, b"", "RecordTooLarge",
                                 f"JSON document over {MAX_RECORD_BYTES} bytes: use ndjson or a JSON array")])
            return
        chunk = Chunk(raws=[])
        _add_element(chunk, data, 1, 0)
        yield chunk
        return
    yield from _json_array(raw, buf, i + 1, chunk_records)


def _add_element(chunk: Chunk, data: bytes, index: int, offset: int) -> None:
    try:
        rec = _loads(data)
    except orjson.JSONDecodeError as exc:
        chunk.bad.append(Bad(index, offset, data, "JSONDecodeError", str(exc)))
        return
    if type(rec) is dict:
        chunk.records.append(rec)
        chunk.lines.append(index)
        chunk.raws.append(data)  # type: ignore[union-attr]
    else:
        chunk.bad.append(Bad(index, offset, data, "NotAnObject",
                             f"expected a JSON object, got {type(rec).__name__}"))


def _json_array(raw: IO[bytes], buf: bytes, i: int, chunk_records: int) -> Iterator[Chunk]:
    """Find top-level element boundaries with a small scanner, parse each with orjson."""
    base = 0  # absolute offset of buf[0]
    index = 0
    chunk = Chunk(raws=[])
    depth = 0
    start: int | None = None  # start of the current element in buf
    eof = False
    while True:
        # scan as far as the buffer allows; break out when more input is needed
        while True:
            if depth == 0:
                while i < len(buf) and buf[i] in _WS:
                    i += 1
                if i >= len(buf):
                    break
                c = buf[i]
                if c == 0x5D or c == 0x2C:  # ] or ,
                    if start is not None:
                        index += 1
                        if i - start > MAX_RECORD_BYTES:  # same limit inside one read
                            chunk.bad.append(Bad(index, base + start, b"", "RecordTooLarge",
                                                 f"array element {index} is over "
                                                 f"{MAX_RECORD_BYTES} bytes"))
                        else:
                            _add_element(chunk, buf[start:i], index, base + start)
                        start = None
                    elif c == 0x2C or index:
                        chunk.bad.append(Bad(index + 1, base + i, b"", "JSONDecodeError",
                                             "empty array element"))
                    if c == 0x5D:
                        if chunk.records or chunk.bad:
                            yield chunk
                        return
                    if len(chunk.records) >= chunk_records:
                        yield chunk
                        chunk = Chunk(raws=[])
                    i += 1
                    continue
                if start is None:
                    start = i
                if c == 0x7B or c == 0x5B:  # { [
                    depth = 1
                    i += 1
                elif c == 0x22:  # "
                    m = _STRING_END.match(buf, i + 1)
                    if m is None:
                        break
                    i = m.end()
                else:  # number, true, false, null
                    j = i
                    while j < len(buf) and buf[j] not in b",] \t\r\n":
                        j += 1
                    if j >= len(buf) and not eof:
                        break
                    i = j
            else:
                m = _STRUCT.search(buf, i)
                if m is None:
                    i = len(buf)
                    break
                c = buf[m.start()]
                if c == 0x22:
                    s = _STRING_END.match(buf, m.start() + 1)
                    if s is None:
                        i = m.start()
                        break
                    i = s.end()
                else:
                    depth += 1 if c in b"{[" else -1
                    i = m.end()
        if eof:
            index += 1
            what = "input ended inside an element" if start is not None else "missing ']'"
            at = len(buf) if start is None else start
            chunk.bad.append(Bad(index, base + at, buf[at:][:4096],
                                 "JSONDecodeError", f"JSON array is not closed: {what}"))
            yield chunk
            return
        if start is not None and len(buf) - start > MAX_RECORD_BYTES:
            index += 1
            chunk.bad.append(Bad(index, base + start, b"", "RecordTooLarge",
                                 f"array element {index} is over {MAX_RECORD_BYTES} bytes"))
            yield chunk
            return
        more = raw.read(READ_SIZE)
        if not more:
            eof = True
        keep = start if start is not None else i
        buf = buf[keep:] + more
        base += keep
        i -= keep
        if start is not None:
            start = 0


class CSVLines:
    """The text lines a CSV reader consumes, kept in ``taken`` until the next row starts,
    so that a row the reader refuses is dead-lettered with its exact input (and forget
    can write the rows it keeps exactly as they were)."""

    __slots__ = ("it", "taken")

    def __init__(self, text: IO[str]) -> None:
        self.it = iter(text)
        self.taken: list[str] = []

    def __iter__(self) -> CSVLines:
        return self

    def __next__(self) -> str:
        line = next(self.it)
        self.taken.append(line)
        return line

    def raw(self) -> bytes:
        data = "".join(self.taken).encode("utf-8", "surrogateescape")
        self.taken.clear()
        # without the row's own line end, as ndjson raws are
        if data.endswith(b"\r\n"):
            return data[:-2]
        return data[:-1] if data.endswith((b"\n", b"\r")) else data


def _csv(raw: IO[bytes], chunk_records: int, delimiter: str, pos: _Position) -> Iterator[Chunk]:
    text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")
    lines = CSVLines(text)  # type: ignore[arg-type]
    # strict: a quote left open at the end is an error, not a field that swallows the
    # rows after it
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    chunk = Chunk()
    header_error = ""
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        header, header_error = [], f"header row: {exc}"
        chunk.bad.append(Bad(1, 0, lines.raw(), "CSVError", header_error))
    else:
        if _has_surrogates(header):
            header_error = "header row is not valid UTF-8"
            chunk.bad.append(Bad(1, 0, lines.raw(), "UnicodeDecodeError", header_error))
    width = len(header)
    header = unique_header(header)
    lines.taken.clear()
    while True:
        pos.line = reader.line_num
        try:
            row = next(reader)
        except StopIteration:
            break
        except _DAMAGE:
            if chunk.records or chunk.bad:
                yield chunk
            raise
        except csv.Error as exc:
            chunk.bad.append(Bad(reader.line_num, 0, lines.raw(), "CSVError", str(exc)))
            continue
        line = reader.line_num
        data = lines.raw()
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if header_error:  # every row is dead-lettered too: none is dropped unseen
            chunk.bad.append(Bad(line, 0, data, "CSVHeaderError",
                                 f"line {line} cannot be mapped to columns: {header_error}"))
        elif len(row) != width:
            chunk.bad.append(Bad(line, 0, data, "CSVError",
                                 f"row has {len(row)} fields, the header has {width}"))
        elif _has_surrogates(row):
            chunk.bad.append(Bad(line, 0, data, "UnicodeDecodeError",
                                 f"line {line} is not valid UTF-8"))
        else:
            chunk.records.append(dict(zip(header, row, strict=True)))
            chunk.lines.append(line)
        if len(chunk.records) >= chunk_records:
            yield chunk
            chunk = Chunk()
    if chunk.records or chunk.bad:
        yield chunk


def unique_header(header: list[str]) -> list[str]:
    """Rename repeated CSV column names so that no value overwrites another.

    The first occurrence keeps its name; the next ones become ``name_2``, ``name_3``, ...
    in order. A generated name never takes a name a real column has (``name,name,name_2``
    gives ``name, name_3, name_2``), so the result depends on the header alone.
    """
    taken = set(header)
    if len(taken) == len(header):
        return header
    seen: set[str] = set()
    out = []
    for name in header:
        if name not in seen:
            seen.add(name)
            out.append(name)
            continue
        n = 2
        while f"{name}_{n}" in taken:
            n += 1
        new = f"{name}_{n}"
        taken.add(new)
        out.append(new)
    return out


def _has_surrogates(row: list[str]) -> bool:
    try:
        "".join(row).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _parquet(raw: IO[bytes], chunk_records: int) -> Iterator[Chunk]:
    import tempfile

    try:
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - depends on the artifact
        raise DecodeError("parquet input needs pyarrow: install headwater[parquet]") from exc
    # Parquet's footer is at the end: spool to disk past 64 MiB, never hold it all in memory.
    with tempfile.SpooledTemporaryFile(max_size=64 << 20) as spool:
        while True:
            data = raw.read(READ_SIZE)
            if not data:
                break
            spool.write(data)
        spool.seek(0)
        try:
            pf = pq.ParquetFile(spool)
        except Exception as exc:  # pyarrow raises ArrowInvalid and friends
            yield Chunk(bad=[Bad(0, 0, b"", type(exc).__name__, f"not a readable Parquet file: {exc}")])
            return
        row = 0
        for batch in pf.iter_batches(batch_size=chunk_records):
            chunk = Chunk()
            for rec in batch.to_pylist():
                row += 1
                chunk.records.append(rec)
                chunk.lines.append(row)
            yield chunk
