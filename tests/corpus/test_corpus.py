"""The bad-input corpus: every object in ``objects/`` and every event body in ``events/``
(plus the platform samples of ``tests/events/``) against its expected outcome in
``manifest.json``.

An object yields records, dead-letter entries that say why, one entry for the whole
object, or a skip (a folder marker); never an exception out of the engine and never a
record unaccounted for. An event yields the objects it names or a ``ValueError`` naming
what was expected, never another exception. The objects also go through one local run
together: no object stops the others.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from headwater.local import local_runner
from headwater.spec import parse_stack
from headwater.testing.doubles import MemoryDeadLetter, MemorySink
from runtimes.aws import events as aws_events
from runtimes.azure import events as azure_events
from runtimes.core.engine import Engine, Step
from runtimes.gcp import events as gcp_events
from transforms.builtins.require import make as require

HERE = Path(__file__).resolve().parent
OBJECTS = HERE / "objects"
EVENTS = HERE / "events"
SAMPLES = HERE.parent / "events"
MANIFEST = json.loads((HERE / "manifest.json").read_text(encoding="utf-8"))
ENTRY_FIELDS = {"pipeline", "source", "line", "step", "error_type", "message", "at"}


def test_the_corpus_is_complete_and_every_file_has_an_expected_outcome():
    on_disk = {p.name for p in OBJECTS.iterdir()}
    listed = {n for n in MANIFEST["objects"] if not n.endswith("/")}
    assert on_disk == listed, "every corpus object needs a manifest entry and vice versa"
    events = {p.relative_to(EVENTS).as_posix() for p in EVENTS.rglob("*.json")}
    assert events == set(MANIFEST["events"])
    assert len(on_disk) + len(events) >= 40


def _body(name: str) -> bytes:
    return b"" if name.endswith("/") else (OBJECTS / name).read_bytes()


@pytest.mark.parametrize("name", sorted(MANIFEST["objects"]))
def test_object(name: str):
    expect = MANIFEST["objects"][name]
    key = expect.get("key", "raw/" + name)
    sink, dl = MemorySink(max_batch=7), MemoryDeadLetter()
    engine = Engine("corpus", [Step.of(0, "require", require(fields=["order_id"]))], sink, dl,
                    stamp_ids=True)

    c = engine.process_object(io.BytesIO(_body(name)), key, "bucket", "v1")

    if expect.get("skipped"):
        assert c.skipped_objects == 1 and not sink.records and not dl.entries
        return
    if "object" in expect:
        (entry,) = dl.entries
        assert (entry["step"], entry["error_type"]) == ("object", expect["object"])
        assert entry["source"] == {"bucket": "bucket", "key": key, "version": "v1"}
        assert c.undecodable_objects == 1 and not sink.records
        return
    # nothing unaccounted for: every input is in the sink or has an entry
    assert c.balanced(), c
    assert c.received == len(sink.records) + len(dl.entries) + c.dropped
    if "records_at_least" in expect:
        assert len(sink.records) >= expect["records_at_least"]
    else:
        assert len(sink.records) == expect["records"]
    assert [e["error_type"] for e in dl.entries] == expect["deadletters"]
    ids = [r["_headwater_id"] for r in sink.records]
    assert len(ids) == len(set(ids))
    for e in dl.entries:
        assert ENTRY_FIELDS <= set(e) and e["message"], e
        assert e["source"]["key"] == key
        # the input is in the entry: the record, or the raw text (exact bytes when not UTF-8)
        assert "record" in e or "raw" in e, e
        if "raw_b64" in e:
            assert base64.b64decode(e["raw_b64"]) in _body(name) or name.endswith(".gz")
    for field, value in expect.get("values", {}).items():
        assert sink.records[0][field] == value and type(sink.records[0][field]) is type(value)
    by_order = {r["order_id"]: r for r in sink.records}
    for order, values in expect.get("values_by_order", {}).items():
        for field, value in values.items():
            assert by_order[order][field] == value and type(by_order[order][field]) is type(value)


def test_every_row_under_an_unreadable_csv_header_keeps_its_text():
    dl = MemoryDeadLetter()
    Engine("corpus", [], MemorySink(), dl).process_object(
        io.BytesIO(_body("invalid_utf8_header.csv")), "raw/h.csv")
    assert [e.get("raw") for e in dl.entries[1:]] == ["1,a", "2,b"]


def test_an_unclosed_csv_quote_keeps_the_rest_of_the_text_in_its_entry():
    dl = MemoryDeadLetter()
    Engine("corpus", [], MemorySink(), dl).process_object(
        io.BytesIO(_body("unclosed_quote.csv")), "raw/q.csv")
    (entry,) = dl.entries
    assert entry["raw"] == '2,"never closed\n3,lost?'


def test_all_corpus_objects_in_one_local_run_into_duckdb(tmp_path: Path):
    """One run over every corpus object: each object is committed (records in the
    warehouse, entries in the dead-letter folder) and none stops the others."""
    import duckdb

    root = tmp_path / "bucket"
    (root / "raw" / "corpus").mkdir(parents=True)
    for name in MANIFEST["objects"]:
        if not name.endswith("/"):
            shutil.copy(OBJECTS / name, root / "raw" / "corpus" / name)
    stack = parse_stack({"headwater:cloud": "local", "headwater:pipelines": [{
        "name": "corpus", "source": {"prefix": "raw/corpus/", "format": "auto"},
        "transforms": [{"use": "require", "with": {"fields": ["order_id"]}}],
        "sink": {"table": "corpus", "columns": {"order_id": "string"}}}]})
    warehouse = tmp_path / "wh.duckdb"

    report = local_runner(stack, root, warehouse, sleep=lambda s: None,
                          handle_sigint=False).run()

    (pr,) = report.pipelines
    assert report.errors == [] and pr.objects == len(MANIFEST["objects"]) - 1
    c = pr.counters
    assert c.balanced()
    entries = [json.loads(x) for f in (root / "deadletter").rglob("*.ndjson")
               for x in f.read_text(encoding="utf-8").splitlines()]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute("select count(*), count(distinct _headwater_id) from corpus").fetchone()
    assert rows[0] == rows[1] == c.written
    record_entries = [e for e in entries if e["step"] != "object"]
    assert len(record_entries) == c.dead_lettered
    assert len(entries) - len(record_entries) == c.undecodable_objects == sum(
        1 for e in MANIFEST["objects"].values() if "object" in e)


# -- events ---------------------------------------------------------------------------


def _aws(doc: Any, expect: dict[str, Any]) -> None:
    if "error" in expect:
        with pytest.raises(ValueError, match=expect["error"]):
            aws_events.parse_event(doc)
        return
    messages = aws_events.parse_event(doc)
    assert len(messages) == len(expect["messages"])
    for msg, want in zip(messages, expect["messages"], strict=True):
        if "error" in want:
            with pytest.raises(ValueError, match=want["error"]):
                aws_events.parse_body(msg.body)
            continue
        note = aws_events.parse_body(msg.body)
        assert note.test == want.get("test", False)
        assert [[o.bucket, o.key, o.created] for o in note.objects] == want.get("objects", [])


def _gcp(doc: Any, expect: dict[str, Any]) -> None:
    body = doc["body"]
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    if "error" in expect:
        with pytest.raises(ValueError, match=expect["error"]):
            gcp_events.parse_request(doc["headers"], raw)
        return
    note = gcp_events.parse_request(doc["headers"], raw)
    o = note.object
    assert [o.bucket, o.name, o.generation] == expect["object"]
    assert note.finalized is expect["finalized"]


def _azure(raw: bytes, expect: dict[str, Any]) -> None:
    if "error" in expect:
        with pytest.raises(ValueError, match=expect["error"]):
            azure_events.parse_body(raw)
        return
    notes = azure_events.parse_body(raw)
    assert [n.kind for n in notes] == expect["kinds"]
    assert [[n.blob.container, n.blob.name] for n in notes if n.blob] == expect.get("blobs", [])


@pytest.mark.parametrize("name", sorted(MANIFEST["events"]))
def test_event(name: str):
    expect = MANIFEST["events"][name]
    raw = (EVENTS / name).read_bytes()
    cloud = name.split("/", 1)[0]
    if cloud == "azure":
        _azure(raw, expect)
    elif cloud == "aws":
        _aws(json.loads(raw), expect)
    else:
        _gcp(json.loads(raw), expect)


@pytest.mark.parametrize("path", sorted(SAMPLES.rglob("*.json")), ids=lambda p: p.name)
def test_platform_samples_parse(path: Path):
    """The documented samples each platform sends (tests/events) parse without error."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    cloud = path.parent.name
    if cloud == "aws":
        for msg in aws_events.parse_event(doc):
            note = aws_events.parse_body(msg.body)
            assert note.test or note.objects
    elif cloud == "gcp":
        doc.pop("_source", None)
        assert gcp_events.parse_push(doc).object.name
    else:
        assert azure_events.parse_body(path.read_bytes())
