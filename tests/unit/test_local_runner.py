"""The local runner end to end: the example objects of Pulumi.local.yaml, a real DuckDB file,
real dead-letter files, the ledger, reprocessing and crashes. Every test works on a copy of
examples/orders in tmp_path, never in the repository."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import shutil
from pathlib import Path

import duckdb
import pytest
import yaml

from headwater.local import local_runner
from headwater.spec import load_stack_file, parse_stack
from runtimes.core.engine import Counters
from runtimes.local import (
    DuckDBSink,
    FolderLookup,
    LocalRunner,
    LookupUnavailable,
    SecretMissing,
    SinkSchemaError,
    env_secret,
    list_objects,
    secret_env_name,
    sql_type,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "orders"
STACK = ROOT / "Pulumi.local.yaml"
ENV = {"HEADWATER_SECRET_EMAIL_KEY": "test-key"}

BAD_ORDERS = {
    ("raw/orders/2024-05-01.ndjson", 4, "decode", "JSONDecodeError"),
    ("raw/orders/2024-05-02.json", 3, "1:cents", "ValueError"),
    ("raw/orders/2024-05-03.csv", 3, "3:enrich", "LookupError"),
    ("raw/orders/2024-05-04.ndjson.gz", 3, "decode", "JSONDecodeError"),
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    dest = tmp_path / "bucket"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("deadletter", "*.py"))
    return dest


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    return tmp_path / "wh" / "warehouse.duckdb"


def local_stack(**limits):
    """Pulumi.local.yaml, with ``limits`` applied to every pipeline."""
    config = yaml.safe_load(STACK.read_text())["config"]
    for p in config["headwater:pipelines"]:
        if limits:
            p["limits"] = limits
    return parse_stack(config)


def runner(root: Path, warehouse: Path, stack=None, **kw) -> LocalRunner:
    kw.setdefault("environ", ENV)
    return local_runner(stack or load_stack_file(STACK), root, warehouse, sleep=lambda s: None,
                       **kw)


def sql(warehouse: Path, query: str, params=None) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(query, params or []).fetchall()


def deadletters(root: Path, pipeline: str) -> list[dict]:
    entries = []
    for f in sorted((root / "deadletter" / pipeline).rglob("*.ndjson")):
        entries += [json.loads(line) for line in f.read_text().splitlines()]
    return entries


def by_name(report):
    return {p.name: p for p in report.pipelines}


# -- the example, end to end --------------------------------------------------------------


def test_example_runs_end_to_end_into_duckdb(example_plugin, root, warehouse):
    report = runner(root, warehouse).run()
    assert report.ok, report.errors
    orders, signups = by_name(report)["orders"], by_name(report)["signups"]
    assert (orders.objects, orders.counters.received, orders.counters.written,
            orders.counters.dropped, orders.counters.dead_lettered) == (5, 28, 24, 0, 4)
    assert (signups.objects, signups.counters.received, signups.counters.written,
            signups.counters.dead_lettered) == (1, 6, 5, 1)
    assert orders.counters.balanced() and signups.counters.balanced()

    # exact cents, normalized text, enrichment columns and UTC timestamps in the warehouse
    rows = {r[0]: r[1:] for r in sql(warehouse, "SELECT order_id, value_cents, category, tier, "
                                                "country, ts FROM orders")}
    assert len(rows) == 24 == sql(warehouse, "SELECT count(*) FROM orders")[0][0]
    assert rows["o-1001"] == (1999, "BOOKS", "gold", "DE", dt.datetime(2024, 5, 1, 9, 15))
    assert rows["o-1003"][0] == 10  # 0.1 dollars
    assert rows["o-2002"][0] == 1230  # "12.30" from a JSON string
    assert rows["o-3004"][:2] == (25000, "ELECTRONICS")  # CSV text "250"
    assert rows["o-5005"][0] == 1  # parquet double 0.01
    assert rows["o-4004"][1:4] == ("TOYS", "bronze", "US")  # from the gzip object
    assert {"o-2003", "o-3002", "o-1099", "o-4099"}.isdisjoint(rows)
    types = dict(sql(warehouse, "SELECT column_name, data_type FROM information_schema.columns "
                                "WHERE table_name = 'orders'"))
    assert types["value_cents"] == "BIGINT" and types["ts"] == "TIMESTAMP"

    # every malformed record is in the dead-letter with its context
    entries = deadletters(root, "orders")
    assert {(e["source"]["key"], e["line"], e["step"], e["error_type"]) for e in entries} == BAD_ORDERS
    for e in entries:
        assert e["pipeline"] == "orders" and e["message"]
    by_key = {e["source"]["key"]: e for e in entries}
    assert "abc" in by_key["raw/orders/2024-05-02.json"]["message"]
    assert by_key["raw/orders/2024-05-02.json"]["record"]["order_id"] == "o-2003"
    assert "u99" in by_key["raw/orders/2024-05-03.csv"]["message"]
    assert "raw_b64" in by_key["raw/orders/2024-05-04.ndjson.gz"]  # exact bytes kept

    # the signups pipeline: pseudonymized with the env secret, plugin column added
    signup = dict((r[0], r[1:]) for r in sql(warehouse, "SELECT email, country_name, plan "
                                                         "FROM signups"))
    ann = hmac.new(b"test-key", b"ann@example.org", hashlib.sha256).hexdigest()
    assert signup[ann] == ("Germany", "pro")
    assert [(e["line"], e["step"]) for e in deadletters(root, "signups")] == [(6, "decode")]


def test_rerun_writes_nothing_new(root, warehouse):
    first = runner(root, warehouse, pipelines=["orders"]).run()
    assert by_name(first)["orders"].objects == 5
    files = sorted((root / "deadletter").rglob("*"))
    ledger = sql(warehouse, "SELECT * FROM _headwater_ledger ORDER BY object_key")

    again = by_name(runner(root, warehouse, pipelines=["orders"]).run())["orders"]
    assert (again.objects, again.skipped, again.counters.received, again.counters.written) == (0, 5, 0, 0)
    assert sql(warehouse, "SELECT count(*) FROM orders")[0][0] == 24
    assert sql(warehouse, "SELECT * FROM _headwater_ledger ORDER BY object_key") == ledger
    assert sorted((root / "deadletter").rglob("*")) == files


def test_reprocess_replaces_earlier_rows_instead_of_duplicating(root, warehouse):
    runner(root, warehouse, pipelines=["orders"]).run()
    report = by_name(runner(root, warehouse, pipelines=["orders"], reprocess=True).run())["orders"]
    assert (report.objects, report.skipped, report.counters.written) == (5, 0, 24)
    assert sql(warehouse, "SELECT count(*), count(DISTINCT order_id) FROM orders")[0] == (24, 24)
    assert sql(warehouse, "SELECT count(*) FROM _headwater_ledger")[0][0] == 5


def test_changed_object_is_processed_again_and_replaces_its_rows(root, warehouse):
    runner(root, warehouse, pipelines=["orders"]).run()
    obj = root / "raw/orders/2024-05-01.ndjson"
    obj.write_bytes(b'{"order_id":"o-1001","user_id":"u1","value":2.5,"category":"x",'
                    b'"ts":"2024-05-01T09:15:00Z"}\n')
    report = by_name(runner(root, warehouse, pipelines=["orders"]).run())["orders"]
    assert (report.objects, report.skipped, report.counters.written) == (1, 4, 1)
    assert sql(warehouse, "SELECT count(*) FROM orders WHERE _headwater_object = ?",
               [obj.relative_to(root).as_posix()])[0][0] == 1
    assert sql(warehouse, "SELECT value_cents FROM orders WHERE order_id = 'o-1001'") == [(250,)]
    assert sql(warehouse, "SELECT count(*) FROM orders")[0][0] == 24 - 6 + 1


class CrashingSink:
    """Wraps the real DuckDB sink: inserts the batch, then raises, from the Nth call on
    while ``key`` is being written (the rows of the earlier batches are already inserted)."""

    def __init__(self, inner: DuckDBSink, key: str, from_call: int = 2) -> None:
        self.inner = inner
        self.max_batch = inner.max_batch
        self.key, self.from_call, self.calls = key, from_call, 0

    def write(self, records):
        failures = self.inner.write(records)
        if self.inner.object_key == self.key:
            self.calls += 1
            if self.calls >= self.from_call:
                raise ConnectionResetError("warehouse went away mid-object")
        return failures


def test_crash_mid_object_leaves_no_rows_and_no_ledger_entry(root, warehouse):
    key = "raw/orders/2024-05-01.ndjson"
    stack = local_stack(sink_batch=2)  # 6 good records: 3 batches, the 2nd one crashes
    report = runner(root, warehouse, stack, pipelines=["orders"],
                    make_sink=lambda inner: CrashingSink(inner, key)).run()
    orders = by_name(report)["orders"]
    assert not report.ok and (orders.objects, orders.failed) == (4, 1)
    assert [e.key for e in report.errors] == [key]
    assert "warehouse went away" in report.errors[0].error
    assert sql(warehouse, "SELECT count(*) FROM orders WHERE _headwater_object = ?", [key]) == [(0,)]
    assert sql(warehouse, "SELECT count(*) FROM _headwater_ledger WHERE object_key = ?", [key]) == [(0,)]
    assert sql(warehouse, "SELECT count(*) FROM orders")[0][0] == 24 - 6  # the others went on

    # the object stayed undone: the next run does it, and only it
    again = by_name(runner(root, warehouse, stack, pipelines=["orders"]).run())["orders"]
    assert (again.objects, again.skipped, again.counters.written) == (1, 4, 6)
    assert sql(warehouse, "SELECT count(*), count(DISTINCT order_id) FROM orders")[0] == (24, 24)


def test_missing_secret_fails_the_object_naming_the_env_var(example_plugin, root, warehouse):
    report = runner(root, warehouse, pipelines=["signups"], environ={}).run()
    [error] = report.errors
    assert error.key == "raw/signups/2024-05-01.csv"
    assert "HEADWATER_SECRET_EMAIL_KEY" in error.error
    assert sql(warehouse, "SELECT count(*) FROM _headwater_ledger")[0][0] == 0
    assert sql(warehouse, "SELECT count(*) FROM signups")[0][0] == 0
    assert not (root / "deadletter" / "signups").exists()  # nothing dead-lettered for it


def test_missing_lookup_table_fails_objects_and_others_still_run(root, warehouse):
    (root / "lookup" / "users.csv").unlink()
    report = runner(root, warehouse, pipelines=["orders"]).run()
    orders = by_name(report)["orders"]
    assert orders.failed == 5 and orders.objects == 0
    assert all("lookup table 'users' not found" in e.error for e in report.errors)


# -- sink types and rejections --------------------------------------------------------------


def one_pipeline(root: Path, name: str, body: dict):
    return parse_stack({"headwater:pipelines": [{"name": name, **body}]})


def test_values_the_warehouse_rejects_are_dead_lettered_per_record(root, warehouse):
    (root / "raw/n").mkdir(parents=True)
    (root / "raw/n/a.ndjson").write_text(
        '{"id": "a", "n": 7}\n{"id": "b", "n": "abc"}\n{"id": "c", "n": 1.5}\n'
        '{"id": "d", "n": "8"}\n{"id": "e", "n": null, "at": "2024-05-01T12:00:00+02:00"}\n')
    stack = one_pipeline(root, "nums", {
        "source": {"prefix": "raw/n/"},
        "sink": {"table": "nums", "columns": {"id": "string", "n": "bigint", "at": "timestamp"}}})
    nums = by_name(runner(root, warehouse, stack).run())["nums"]
    assert (nums.counters.written, nums.counters.dead_lettered) == (3, 2)
    assert sql(warehouse, "SELECT id, n, \"at\" FROM nums ORDER BY id") == [
        ("a", 7, None), ("d", 8, None), ("e", None, dt.datetime(2024, 5, 1, 10, 0))]
    dead = {e["record"]["id"]: e for e in deadletters(root, "nums")}
    assert set(dead) == {"b", "c"}
    assert dead["b"]["step"] == "sink" and dead["b"]["error_type"] == "ConversionError"
    assert "'n' (BIGINT)" in dead["b"]["message"] and "'abc'" in dead["b"]["message"]
    assert dead["b"]["attempts"] == 1  # not retried: a type mismatch does not heal


def test_without_columns_the_table_is_inferred_and_grows(root, warehouse):
    (root / "raw/x").mkdir(parents=True)
    (root / "raw/x/1.ndjson").write_text(
        '{"i": 1, "f": 1, "s": "a", "b": true, "o": {"k": [1]}}\n{"i": 2, "f": 2.5}\n')
    (root / "raw/x/2.ndjson").write_text('{"i": 3, "extra": "new"}\n')
    stack = one_pipeline(root, "inf", {"source": {"prefix": "raw/x/"}, "sink": {"table": "inf"}})
    assert runner(root, warehouse, stack).run().ok
    types = dict(sql(warehouse, "SELECT column_name, data_type FROM information_schema.columns "
                                "WHERE table_name = 'inf'"))
    assert {k: types[k] for k in ("i", "f", "s", "b", "o", "extra")} == {
        "i": "BIGINT", "f": "DOUBLE", "s": "VARCHAR", "b": "BOOLEAN", "o": "VARCHAR",
        "extra": "VARCHAR"}
    assert sql(warehouse, "SELECT i, f, o, extra FROM inf ORDER BY i") == [
        (1, 1.0, '{"k":[1]}', None), (2, 2.5, None, None), (3, None, None, "new")]


def test_sql_types_of_declared_columns():
    assert [sql_type("c", t) for t in ("string", "int", "BIGINT", "double", "boolean",
                                         "timestamp", "date", "decimal(12, 2)")] == [
        "VARCHAR", "BIGINT", "BIGINT", "DOUBLE", "BOOLEAN", "TIMESTAMP", "DATE", "DECIMAL(12,2)"]
    with pytest.raises(SinkSchemaError, match="'c': unknown type 'money'"):
        sql_type("c", "money")
    with pytest.raises(SinkSchemaError):
        sql_type("c", "decimal(40,2)")


def test_duckdb_sink_reports_failing_indexes_inside_an_open_transaction():
    con = duckdb.connect()
    sink = DuckDBSink(con, "t", {"k": "string", "amount": "decimal(10,2)", "ok": "boolean"},
                      pipeline="p")
    sink.prepare()
    sink.object_key = "obj"
    con.execute("BEGIN TRANSACTION")
    failures = sink.write([{"k": "a", "amount": "19.99", "ok": True}, {"k": "b", "ok": "maybe"},
                           {"k": "c", "amount": 3}])
    assert [(f.index, f.retryable) for f in failures] == [(1, False)]
    assert "'ok' (BOOLEAN)" in failures[0].message
    sink.flush()  # the rows that fit go in (batches are kept back for one INSERT)
    con.execute("COMMIT")  # the transaction is still usable after a rejected value
    assert con.execute("SELECT k, CAST(amount AS VARCHAR), ok, _headwater_object FROM t "
                       "ORDER BY k").fetchall() == [("a", "19.99", True, "obj"),
                                                    ("c", "3.00", None, "obj")]


# -- objects, lookups, secrets ---------------------------------------------------------------


def test_lookup_and_deadletter_folders_are_never_source_objects(root, warehouse):
    runner(root, warehouse, pipelines=["orders"]).run()  # fills deadletter/orders/...
    keys = [k for k, _ in list_objects(root)]
    assert keys and not [k for k in keys if k.startswith(("lookup/", "deadletter/"))]
    # a pipeline whose prefix would match both folders still never reads them
    (root / "lookup" / "d.ndjson").write_text('{"x": 1}\n')
    stack = one_pipeline(root, "d", {"source": {"prefix": "d", "suffix": ".ndjson"},
                                     "sink": {"table": "d"}})
    d = by_name(runner(root, warehouse, stack).run())["d"]
    assert (d.objects, d.skipped, d.failed) == (0, 0, 0)


def test_pipeline_option_runs_only_that_pipeline(root, warehouse):
    report = runner(root, warehouse, pipelines=["orders"]).run()
    assert [p.name for p in report.pipelines] == ["orders"]
    with pytest.raises(KeyError, match="no pipeline 'nope'; have: orders, signups"):
        runner(root, warehouse, pipelines=["nope"]).run()


def test_folder_lookup_keys_csv_and_ndjson(tmp_path):
    (tmp_path / "users.csv").write_text("tier,user_id\ngold,7\nsilver,8\n")
    (tmp_path / "skus.ndjson").write_text('{"sku": 1, "name": "Lamp"}\n\n{"sku": 2, "name": "Cup"}\n')
    lookup = FolderLookup(tmp_path, {"users": "user_id"})
    # the key column comes from the step's `key` setting; keys match as text
    assert lookup("users", [7, "8", "9", None]) == {7: {"tier": "gold", "user_id": "7"},
                                                     "8": {"tier": "silver", "user_id": "8"}}
    # without a setting: the first column
    assert lookup("skus", ["2"]) == {"2": {"sku": 2, "name": "Cup"}}
    with pytest.raises(LookupUnavailable, match="looked for .*nope.csv"):
        lookup("nope", [1])


def test_env_secret_names_and_errors():
    assert secret_env_name("email-key") == "HEADWATER_SECRET_EMAIL_KEY"
    assert secret_env_name("team/api-token") == "HEADWATER_SECRET_TEAM_API_TOKEN"
    secret = env_secret({"HEADWATER_SECRET_TEAM_API_TOKEN": "s3"})
    assert secret("team/api-token") == "s3"
    with pytest.raises(SecretMissing, match="export HEADWATER_SECRET_EMAIL_KEY="):
        secret("email-key")


def test_counters_shape_is_what_the_summary_reads():
    assert set(Counters().as_dict()) >= {"received", "written", "dropped", "dead_lettered",
                                         "retries", "seconds"}


def test_spark_marker_and_folder_placeholder_do_not_fail_every_run(root, warehouse):
    """A ``_SUCCESS`` marker under a ``format: auto`` prefix is one dead-letter entry and
    enters the ledger like any object; an empty folder object is skipped. A second run
    has nothing to do and succeeds."""
    (root / "raw" / "orders" / "_SUCCESS").write_bytes(b"")
    (root / "raw" / "orders" / "2024" / "05").mkdir(parents=True)  # an empty folder: no object
    first = runner(root, warehouse, pipelines=["orders"]).run()
    assert first.ok, first.errors
    orders = next(p for p in first.pipelines if p.name == "orders")
    assert orders.counters.undecodable_objects == 1
    entries = [json.loads(line) for f in (root / "deadletter" / "orders").rglob("*.ndjson")
               for line in f.read_text().splitlines()]
    marker = [e for e in entries if e["source"]["key"] == "raw/orders/_SUCCESS"]
    assert [(e["step"], e["line"]) for e in marker] == [("object", 0)]
    second = runner(root, warehouse, pipelines=["orders"]).run()
    assert second.ok and all(p.objects == 0 for p in second.pipelines)


def test_every_row_carries_a_stable_row_id(root, warehouse):
    runner(root, warehouse).run()
    import duckdb

    con = duckdb.connect(str(warehouse), read_only=True)
    ids = [r[0] for r in con.sql("select _headwater_id from orders").fetchall()]
    con.close()
    assert ids and len(ids) == len(set(ids))
    again = warehouse.with_name("again.duckdb")
    shutil.rmtree(root / "deadletter", ignore_errors=True)
    runner(root, again).run()
    con = duckdb.connect(str(again), read_only=True)
    assert sorted(r[0] for r in con.sql("select _headwater_id from orders").fetchall()) == sorted(ids)
    con.close()


# -- stopping (Ctrl-C) --------------------------------------------------------------------


class StoppingSink:
    """Passes writes through; during the first write for ``key``, calls ``stop`` (the way a
    Ctrl-C arrives in the middle of an object)."""

    def __init__(self, inner, key, stop):
        self.inner, self.key, self.stop = inner, key, stop
        self.max_batch = inner.max_batch

    def write(self, records):
        failures = self.inner.write(records)
        if self.inner.object_key == self.key:
            self.stop()
        return failures


def stopped_run(root, warehouse, key, stop):
    holder = {}
    r = runner(root, warehouse, local_stack(sink_batch=2), pipelines=["orders"],
               make_sink=lambda inner: StoppingSink(inner, key, lambda: stop(holder["r"])))
    holder["r"] = r
    return r.run()


def assert_whole_objects_only(warehouse):
    ledger = dict(sql(warehouse, "SELECT object_key, written FROM _headwater_ledger"))
    rows = dict(sql(warehouse, "SELECT _headwater_object, count(*) FROM orders GROUP BY 1"))
    assert rows == {k: n for k, n in ledger.items() if n}
    return ledger


@pytest.mark.parametrize("how", ["stop", "sigint"])
def test_a_stop_mid_object_rolls_it_back_and_starts_nothing_else(root, warehouse, how):
    import os
    import signal

    key = "raw/orders/2024-05-02.json"  # the second object
    stop = (lambda r: r.stop()) if how == "stop" else (
        lambda r: os.kill(os.getpid(), signal.SIGINT))
    before = signal.getsignal(signal.SIGINT)
    report = stopped_run(root, warehouse, key, stop)  # returns: no KeyboardInterrupt escapes

    assert signal.getsignal(signal.SIGINT) is before  # the runner's handler is gone again
    assert not report.ok and report.errors == []
    assert (report.interrupted.pipeline, report.interrupted.key) == ("orders", key)
    orders = by_name(report)["orders"]
    assert (orders.objects, orders.failed) == (1, 0)
    assert assert_whole_objects_only(warehouse) == {"raw/orders/2024-05-01.ndjson": 6}
    # nothing of the stopped object was dead-lettered: it was not processed, only rolled back
    assert {e["source"]["key"] for e in deadletters(root, "orders")} == {
        "raw/orders/2024-05-01.ndjson"}

    again = by_name(runner(root, warehouse, pipelines=["orders"]).run())["orders"]
    assert (again.objects, again.skipped) == (4, 1)
    assert sql(warehouse, "SELECT count(*), count(DISTINCT order_id) FROM orders")[0] == (24, 24)


def test_a_stop_cuts_the_retry_pause_short(root, warehouse):
    """A sink that is down makes the engine pause between attempts; a stop during a pause
    ends the run there instead of retrying on and then blaming the sink."""

    class DownSink:
        max_batch = 500
        writes = 0

        def write(self, records):
            DownSink.writes += 1
            raise ConnectionError("warehouse went away")

    r = local_runner(load_stack_file(STACK), root, warehouse, environ=ENV,
                     pipelines=["orders"], make_sink=lambda inner: DownSink(),
                     sleep=lambda seconds: r.stop())  # Ctrl-C during the first pause
    report = r.run()
    assert DownSink.writes == 1
    assert report.interrupted.key == "raw/orders/2024-05-01.ndjson" and report.errors == []


# -- the Arrow sink -----------------------------------------------------------------------


def test_arrow_sink_reads_values_as_their_text_would_be_read():
    """Typed Arrow columns go in as they are; other values fit a column exactly when their
    text does (the per-record failure messages name column, type and value)."""
    con = duckdb.connect()
    sink = DuckDBSink(con, "t", {"k": "string", "n": "bigint", "d": "double", "s": "string",
                                 "b": "boolean", "m": "decimal(10,2)"}, pipeline="p")
    sink.prepare()
    rows = [
        {"k": "a", "n": 7, "d": 1, "s": 1.5, "b": True, "m": 19.99},
        {"k": "b", "n": "8", "d": 2.5, "s": True, "b": "false", "m": "0.29"},
        {"k": "c", "n": 1.0, "d": None, "s": 12, "b": None, "m": 1},
        {"k": "d", "n": True},  # a bool is not a number: its text 'true' is not one
        {"k": "e", "n": 1.5},  # not integral
        {"k": "f", "n": 2**70},  # beyond 64 bits
        {"k": "g", "m": float("nan")},
    ]
    failures = sink.write(rows)
    assert [(f.index, f.error_type, f.retryable) for f in failures] == [
        (3, "ConversionError", False), (4, "ConversionError", False),
        (5, "ConversionError", False), (6, "ConversionError", False)]
    assert "'n' (BIGINT)" in failures[0].message and "bool True" in failures[0].message
    assert "float 1.5" in failures[1].message and f"int {2**70}" in failures[2].message
    sink.flush()
    got = con.execute("SELECT k, n, d, s, b, CAST(m AS VARCHAR) FROM t ORDER BY k").fetchall()
    assert got == [("a", 7, 1.0, "1.5", True, "19.99"), ("b", 8, 2.5, "true", False, "0.29"),
                   ("c", 1, None, "12", None, "1.00")]


def test_arrow_sink_evolves_its_cached_columns_only_for_new_fields_and_after_rollback():
    con = duckdb.connect()
    sink = DuckDBSink(con, "t", pipeline="p")
    con.execute("BEGIN TRANSACTION")
    assert sink.write([{"a": 1}]) == []
    sink.flush()
    con.execute("COMMIT")
    con.execute("BEGIN TRANSACTION")
    assert sink.write([{"a": 2, "b": "x"}]) == []  # adds column b
    sink.flush()
    con.execute("ROLLBACK")  # b is gone again; the runner tells the sink to forget
    sink.forget()
    assert sink.write([{"a": 3, "b": "y"}]) == []
    sink.flush()
    assert con.execute("SELECT a, b FROM t ORDER BY a").fetchall() == [(1, None), (3, "y")]


def test_one_record_with_ten_thousand_fields_goes_in_as_one_row():
    con = duckdb.connect()
    sink = DuckDBSink(con, "wide", pipeline="p")
    record = {f"f{i}": (i if i % 2 else f"v{i}") for i in range(10_000)}
    assert sink.write([record]) == []
    sink.flush()
    assert con.execute("SELECT count(*) FROM information_schema.columns "
                       "WHERE table_name = 'wide'").fetchone()[0] == 10_000 + 2
    assert con.execute('SELECT "f9999", "f9998" FROM wide').fetchall() == [(9999, "v9998")]


# -- objects in worker processes ------------------------------------------------------------


def _snapshot(root: Path, warehouse: Path):
    rows = sql(warehouse, "SELECT * EXCLUDE (_headwater_id), _headwater_id FROM orders "
                          "ORDER BY _headwater_id")
    ledger = sql(warehouse, "SELECT pipeline, object_key, sha256, bytes, received, written, "
                            "dropped, dead_lettered FROM _headwater_ledger ORDER BY 1, 2")
    dead = sorted((e["source"]["key"], e["line"], e["step"], e["error_type"], e["message"],
                   json.dumps(e.get("record"), sort_keys=True), e.get("raw"))
                  for e in deadletters(root, "orders"))
    return rows, ledger, dead


def test_workers_commit_the_same_rows_ledger_and_deadletters_as_one_process(root, tmp_path):
    results = []
    for workers in (1, 2):
        shutil.rmtree(root / "deadletter", ignore_errors=True)
        warehouse = tmp_path / f"w{workers}" / "wh.duckdb"
        report = runner(root, warehouse, pipelines=["orders"], workers=workers).run()
        orders = by_name(report)["orders"]
        assert report.ok and orders.objects == 5 and orders.counters.balanced()
        results.append((_snapshot(root, warehouse), orders.counters.written,
                        orders.counters.dead_lettered))
    assert results[0] == results[1]
    assert results[1][1:] == (24, 4)


def test_workers_rerun_and_reprocess_never_duplicate(root, warehouse):
    first = by_name(runner(root, warehouse, pipelines=["orders"], workers=2).run())["orders"]
    assert first.objects == 5
    again = by_name(runner(root, warehouse, pipelines=["orders"], workers=2).run())["orders"]
    assert (again.objects, again.skipped) == (0, 5)
    redo = by_name(runner(root, warehouse, pipelines=["orders"], workers=2,
                          reprocess=True).run())["orders"]
    assert (redo.objects, redo.counters.written) == (5, 24)
    assert sql(warehouse, "SELECT count(*), count(DISTINCT order_id) FROM orders")[0] == (24, 24)
    assert sql(warehouse, "SELECT count(*) FROM _headwater_ledger")[0][0] == 5


def test_workers_an_object_failing_in_a_worker_stays_undone(root, warehouse):
    (root / "lookup" / "users.csv").unlink()  # enrich cannot run: every object fails
    report = runner(root, warehouse, pipelines=["orders"], workers=2).run()
    orders = by_name(report)["orders"]
    assert (orders.objects, orders.failed) == (0, 5)
    assert all("lookup table 'users' not found" in e.error for e in report.errors)
    assert sql(warehouse, "SELECT count(*) FROM _headwater_ledger")[0][0] == 0


def test_workers_a_stop_rolls_back_the_object_being_committed(root, warehouse):
    """A stop while the writer commits the second object: the first is whole in the
    warehouse, nothing else is, and the next run completes the rest without duplicates."""
    r = runner(root, warehouse, pipelines=["orders"], workers=2)
    committed = []

    class StopOnSecond:
        def start(self, objects, total): ...
        def begin(self, pipeline, key, size):
            if committed:
                r.stop()
        def bytes_read(self, n): ...
        def done(self, pipeline, key, ok):
            committed.append(key)

    r.progress = StopOnSecond()
    report = r.run()
    assert report.interrupted is not None and report.errors == []
    assert report.interrupted.key == "raw/orders/2024-05-02.json"
    assert assert_whole_objects_only(warehouse) == {"raw/orders/2024-05-01.ndjson": 6}
    again = by_name(runner(root, warehouse, pipelines=["orders"], workers=2).run())["orders"]
    assert (again.objects, again.skipped) == (4, 1)
    assert sql(warehouse, "SELECT count(*), count(DISTINCT order_id) FROM orders")[0] == (24, 24)


def test_regular_chunks_reach_duckdb_as_arrow_tables_not_records(root, warehouse, monkeypatch):
    """The columnar path's output goes to the sink's ``write_table`` through the runner's
    stop check: turning it back into dicts to build Arrow again cost `headwater run` a
    third of its time."""
    from runtimes.local.duckdb_sink import DuckDBSink

    calls = {"write": 0, "write_table": 0}
    for name in calls:
        real = getattr(DuckDBSink, name)

        def spy(self, arg, _real=real, _name=name):
            calls[_name] += 1
            return _real(self, arg)

        monkeypatch.setattr(DuckDBSink, name, spy)
    (root / "raw/n").mkdir(parents=True)
    (root / "raw/n/a.ndjson").write_text(
        "".join(f'{{"id": "r{i}", "value": {i}.25, "category": "x"}}\n' for i in range(50)))
    stack = one_pipeline(root, "nums", {
        "source": {"prefix": "raw/n/"},
        "transforms": [{"use": "cents", "with": {"source": "value", "target": "cents"}},
                       {"use": "normalize", "with": {"fields": {"category": "upper"}}}],
        "sink": {"table": "nums", "columns": {"id": "string", "cents": "bigint",
                                              "category": "string"}}})
    report = runner(root, warehouse, stack, workers=1).run()
    assert report.ok
    assert calls == {"write": 0, "write_table": 1}
    assert sql(warehouse, "SELECT count(*), sum(cents), min(category) FROM nums") == [
        (50, sum(i * 100 + 25 for i in range(50)), "X")]
