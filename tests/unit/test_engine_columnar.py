"""The columnar path against the per-record path: the same rows in the warehouse, byte
for byte, and the same dead-letter entries, on generated data with the edge cases
(exact cents of 19.99 / 0.29 / 1.15, NaN and infinities, numbers as text, missing and
null fields, Unicode case mapping, timestamps with offsets).

A chain with a step that has no vectorised form (``timestamp``) runs the columnar prefix
and falls back per record from that step on."""

from __future__ import annotations

import io

import duckdb
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headwater.testing.doubles import MemoryDeadLetter
from runtimes.core.engine import Engine, Step
from runtimes.local.duckdb_sink import DuckDBSink
from transforms.builtins import cents, drop, normalize, rename, require, timestamp
from transforms.contract import Context

COLUMNS = {"order_id": "string", "value_cents": "bigint", "category": "string",
           "ts": "timestamp", "note": "string"}

amounts = st.one_of(
    st.sampled_from([19.99, 0.29, 1.15, 0.1 + 0.2, 1.005, 2.675, -0.0, 100.0, 0.125, 1e20,
                     float("nan"), float("inf"), 123456789.99, 12, 0, -7]),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(min_value=-(2**62), max_value=2**62),
    st.decimals(places=3, min_value=-10**6, max_value=10**6).map(lambda d: float(d)),
    st.sampled_from(["12.30", " 19.99 ", "abc", "1,234.50", "", "1e3", True, None]),
)
texts = st.one_of(
    st.sampled_from(["books", " Garden ", "straße", "ﬁsh", "İstanbul", "ǅ", "\x1ctoys\x1f",
                     "\u00a0café\u2003", "", "ÅNGSTRÖM", 7, None]),
    st.text(max_size=6),
)
stamps = st.sampled_from(["2024-05-01T09:15:00Z", "2024-05-01T11:15:00+02:00",
                          "2024-05-01T00:30:00-05:30", "2024-05-01 09:15:00", "not a time",
                          1714554900, None])
FIELDS = {"order_id": st.one_of(st.text(min_size=1, max_size=5), st.none()),
          "value": amounts, "category": texts, "ts": stamps,
          "note": st.sampled_from(["x", "y"])}


@st.composite
def objects(draw):
    """NDJSON bytes: regular chunks (every field in every record, one type per field)
    and irregular ones (fields missing, mixed types)."""
    n = draw(st.integers(min_value=1, max_value=40))
    regular = draw(st.booleans())
    records = []
    if regular:
        kinds = {}
        for _ in range(n):
            rec = {}
            for name, strategy in FIELDS.items():
                v = draw(strategy)
                k = type(v) if v is not None else None
                if k is not None:
                    kinds.setdefault(name, k)
                    if kinds[name] is not k:
                        v = None  # keep one type per field: the columnar path's case
                rec[name] = v
            records.append(rec)
    else:
        for _ in range(n):
            rec = {}
            for name, strategy in FIELDS.items():
                if draw(st.booleans()) or name == "order_id":
                    rec[name] = draw(strategy)
            records.append(rec)
    return b"".join(orjson.dumps(r, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"
                    if not any(isinstance(v, float) and v != v or v in (float("inf"),
                                                                        float("-inf"))
                               for v in r.values() if isinstance(v, float))
                    else orjson.dumps(r) + b"\n"
                    for r in records)


def chains(with_record_only_step: bool):
    steps = [("rename", rename.make(fields={"note": "remark"})),
             ("cents", cents.make(source="value", target="value_cents")),
             ("normalize", normalize.make(fields={"category": ["strip", "upper"],
                                                  "order_id": "lower"})),
             ("require", require.make(fields=["order_id", "value_cents"]))]
    if with_record_only_step:
        steps.append(("timestamp", timestamp.make(field="ts")))
    steps.append(("drop", drop.make(fields=["remark"])))
    return [Step.of(i, name, fn) for i, (name, fn) in enumerate(steps)]


CON = duckdb.connect()


def run(payload: bytes, columnar: bool, with_record_only_step: bool, batch: int):
    con = CON
    con.execute("DROP TABLE IF EXISTS orders")
    sink = DuckDBSink(con, "orders", COLUMNS, pipeline="p", max_batch=batch)
    sink.prepare()
    sink.object_key = "raw/o.ndjson"
    dl = MemoryDeadLetter()
    engine = Engine("p", chains(with_record_only_step), sink, dl, Context(pipeline="p"),
                    fmt="ndjson", stamp_ids=True, columnar=columnar)
    c = engine.process_object(io.BytesIO(payload), "raw/o.ndjson", "bucket")
    sink.flush()
    rows = con.execute("SELECT * FROM orders ORDER BY _headwater_id").fetchall()
    entries = [repr({k: v for k, v in e.items() if k != "at"}) for e in dl.entries]
    return rows, entries, c.as_dict() | {"seconds": 0, "sink_seconds": 0}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=objects(), with_record_only_step=st.booleans(),
       batch=st.sampled_from([3, 500]))
def test_columnar_path_gives_the_per_record_paths_rows_and_deadletters(
        payload, with_record_only_step, batch):
    per_record = run(payload, False, with_record_only_step, batch)
    columnar = run(payload, True, with_record_only_step, batch)
    assert columnar == per_record


def test_a_regular_object_really_takes_the_columnar_path(monkeypatch):
    """The property above would pass if the columnar path never ran: count its calls."""
    calls = []
    payload = b"".join(orjson.dumps({"order_id": f"O{i}", "value": 19.99, "category": "books",
                                     "ts": "2024-05-01T11:15:00+02:00", "note": "x"}) + b"\n"
                       for i in range(10))
    steps = chains(True)
    for step in steps:
        vector = getattr(step.fn, "columnar", None)
        if vector is not None:
            def spy(table, ctx, vector=vector, name=step.name):
                calls.append(name)
                return vector(table, ctx)
            step.fn.columnar = spy
    con = duckdb.connect()
    sink = DuckDBSink(con, "orders", COLUMNS, pipeline="p")
    sink.prepare()
    engine = Engine("p", steps, sink, MemoryDeadLetter(), fmt="ndjson", stamp_ids=True,
                    columnar=True)
    c = engine.process_object(io.BytesIO(payload), "raw/o.ndjson")
    sink.flush()
    # the columnar prefix stops at timestamp (no vectorised form); drop runs per record
    assert calls == ["rename", "cents", "normalize", "require"]
    assert c.written == 10
    assert con.execute("SELECT DISTINCT value_cents, category, ts FROM orders").fetchall() == [
        (1999, "BOOKS", __import__("datetime").datetime(2024, 5, 1, 9, 15))]


@pytest.mark.parametrize("value,want", [(19.99, 1999), (0.29, 29), (1.15, 115), (1.005, 101),
                                        (2.675, 268), (0.125, 13), (-0.0, 0)])
def test_vectorised_cents_are_exact(value, want):
    import pyarrow as pa

    fn = cents.make(source="v", target="c")
    table, errors = fn.columnar(pa.table({"v": [value]}), Context())
    assert errors == {} and table.column("c").to_pylist() == [want] == [fn({"v": value}, None)["c"]]
