"""``headwater backfill`` on Spark in local mode (``local[2]``) against ``headwater run`` on
the same objects: the same rows (values and ``_headwater_id``), the same dead-letters,
plugins imported on the executors from the pipeline's artifact, and re-runs that change
nothing but what they are asked to replace."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import duckdb
import pytest

from headwater.backfill import backfill
from headwater.local import local_runner
from headwater.spec import StackConfig, load_stack_file

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples" / "orders"

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("spark")]


def _day(s: str) -> float:
    return dt.datetime.fromisoformat(s + "T12:00:00+00:00").timestamp()


def _arrive(path: Path, day: str) -> None:
    os.utime(path, (_day(day), _day(day)))


@pytest.fixture
def orders_root(tmp_path: Path) -> Path:
    """The example objects, arriving on three days, and the users lookup table."""
    root = tmp_path / "bucket"
    shutil.copytree(EXAMPLES / "raw", root / "raw")
    shutil.copytree(EXAMPLES / "lookup", root / "lookup")
    days = ["2024-05-01", "2024-05-01", "2024-05-02", "2024-05-03", "2024-05-03"]
    for path, day in zip(sorted((root / "raw" / "orders").iterdir()), days, strict=True):
        _arrive(path, day)
    for path in (root / "raw" / "signups").iterdir():
        _arrive(path, "2024-05-02")
    return root


GENERATED = {
    "cloud": "local",
    "pipelines": [{
        "name": "events",
        "source": {"prefix": "raw/events/", "format": "ndjson"},
        "transforms": [{"use": "require", "with": {"fields": ["id"]}}],
        "sink": {"table": "events", "partition": "hour",
                 "columns": {"id": "bigint", "amount": "double", "ok": "boolean",
                             "ts": "timestamp", "day": "date", "price": "decimal(10,2)",
                             "name": "string"}},
    }],
}


def _generated(root: Path) -> None:
    lines = []
    for n in range(60):
        rec = {"id": n, "amount": n * 1.5, "ok": n % 2 == 0, "ts": f"2024-05-01T0{n % 10}:00:00Z",
               "day": "2024-05-01", "price": f"{n}.25", "name": {"n": n} if n % 7 == 0 else f"n{n}"}
        if n == 3:
            rec["id"] = "1.5"  # does not fit bigint: the sink dead-letters it
        if n == 4:
            rec["amount"] = "lots"
        if n == 5:
            del rec["id"]  # `require` dead-letters it
        if n == 6:
            rec["ts"] = "2024-05-01T10:00:00+02:00"  # stored as 08:00 UTC
        lines.append(json.dumps(rec))
    lines.insert(10, "{not json")
    folder = root / "raw" / "events"
    folder.mkdir(parents=True)
    for i in range(3):
        path = folder / f"part-{i}.ndjson"
        path.write_text("\n".join(lines[i * 20:(i + 1) * 20 + (1 if i == 2 else 0)]) + "\n")
        _arrive(path, "2024-05-0" + str(1 + i % 2))


def _local(stack: StackConfig, root: Path, pipeline: str, tmp: Path,
           environ: dict[str, str] | None = None) -> Path:
    warehouse = tmp / "warehouse.duckdb"
    report = local_runner(stack, root, warehouse, pipelines=[pipeline], environ=environ,
                          handle_sigint=False).run()
    assert report.ok, report.errors
    return warehouse


def _rows(sql_from: str, columns: dict[str, str], con: duckdb.DuckDBPyConnection) -> list:
    cols = [f'CAST("{c}" AS TIMESTAMP)' if t == "timestamp" else f'"{c}"'
            for c, t in columns.items()] + ['"_headwater_id"']
    con.execute("SET TimeZone = 'UTC'")
    return sorted(con.execute(f"SELECT {', '.join(cols)} FROM {sql_from}").fetchall(),
                  key=lambda r: r[-1])


def _parquet(path: str) -> str:
    return f"read_parquet('{path.removeprefix('file:')}/**/*.parquet', hive_partitioning = true)"


def _entries(folder: Path, pattern: str) -> list[dict]:
    out = []
    for f in sorted(folder.rglob(pattern)):
        for line in f.read_text().splitlines():
            e = json.loads(line)
            e.pop("at")
            out.append(e)
    return sorted(out, key=lambda e: (e["source"]["key"], e["line"], e["step"]))


def _compare(stack, root, pipeline, tmp_path, spark, environ=None):
    spec = stack.pipeline(pipeline)
    warehouse = _local(stack, root, pipeline, tmp_path, environ)
    out = tmp_path / "out"
    report, _ = backfill(stack, pipeline, root=str(root), output=str(out), spark=spark,
                         artifacts=tmp_path / "dist")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        local_rows = _rows(spec.sink.table, spec.sink.columns, con)
    with duckdb.connect() as con:
        spark_rows = _rows(_parquet(report.table_path), spec.sink.columns, con)
    assert spark_rows == local_rows
    assert len(spark_rows) == report.counters.written
    local_dead = _entries(root / "deadletter" / pipeline, "*.ndjson")
    spark_dead = _entries(out / "deadletter" / pipeline, "part-*")
    assert spark_dead == local_dead
    assert report.counters.received + report.counters.fanned_out == (
        report.counters.written + report.counters.dropped + report.counters.dead_lettered)
    return report, out, local_rows, local_dead


def test_orders_rows_and_deadletters_equal_headwater_run(spark, orders_root, tmp_path):
    stack = load_stack_file(ROOT / "Pulumi.local.yaml")
    report, out, rows, dead = _compare(stack, orders_root, "orders", tmp_path, spark)
    assert report.objects == 5 and rows and dead  # the examples have both
    assert {e["step"] for e in dead} >= {"3:enrich"}
    # the arrival day of each object is its partition, as the live sink's arrival time is
    assert sorted(p.name for p in (out / "orders").glob("dt=*")) == [
        "dt=2024-05-01", "dt=2024-05-02", "dt=2024-05-03"]
    # every executor ran the artifact's code, and nothing a function would not import
    for module, files in report.modules.items():
        assert files and all(f.startswith(str(Path(f).anchor)) and "orders-spark" in f
                             for f in files), (module, files)
    assert report.foreign == []


def test_generated_objects_with_misfits_equal_headwater_run(spark, tmp_path):
    root = tmp_path / "bucket"
    _generated(root)
    stack = StackConfig.model_validate(GENERATED)
    report, out, rows, dead = _compare(stack, root, "events", tmp_path, spark)
    assert report.objects == 3
    steps = sorted({(e["step"], e["error_type"]) for e in dead})
    assert [s for s, _ in steps] == ["0:require", "decode", "sink"], steps
    assert len([e for e in dead if e["step"] == "sink"]) == 2  # id "1.5", amount "lots"
    assert any(r[3] == dt.datetime(2024, 5, 1, 8, 0) for r in rows)  # +02:00 stored as UTC
    assert (out / "events" / "dt=2024-05-01").is_dir() and \
        list((out / "events" / "dt=2024-05-01").glob("hr=12"))


def test_plugin_installed_for_the_pipeline_runs_on_the_executors(
        spark, orders_root, tmp_path, example_plugin, monkeypatch):
    monkeypatch.setenv("HEADWATER_SECRET_EMAIL_KEY", "test-key")
    stack = load_stack_file(ROOT / "Pulumi.local.yaml")
    report, *_ = _compare(stack, orders_root, "signups", tmp_path, spark,
                          environ={"HEADWATER_SECRET_EMAIL_KEY": "test-key"})
    # the executors have no access to the folder the plugin is installed in: it came in
    # the artifact
    files = report.modules["headwater_geo"]
    assert files and all("signups-spark" in f and str(example_plugin) not in f for f in files)
    assert report.counters.written > 0


def _snapshot(out: Path) -> dict[str, list]:
    with duckdb.connect() as con:
        rows = sorted(con.execute(
            f"SELECT * FROM {_parquet(str(out / 'orders'))}").fetchall(), key=str)
    return {"rows": rows, "dead": _entries(out / "deadletter" / "orders", "part-*"),
            "parts": sorted(p.relative_to(out).as_posix() for p in out.rglob("dt=*"))}


def test_rerun_changes_nothing_and_a_range_replaces_only_its_days(spark, orders_root,
                                                                   tmp_path):
    stack = load_stack_file(ROOT / "Pulumi.local.yaml")
    out = tmp_path / "out"

    def run(**kw):
        return backfill(stack, "orders", root=str(orders_root), output=str(out), spark=spark,
                        artifacts=tmp_path / "dist", **kw)[0]

    run()
    first = _snapshot(out)
    run()
    assert _snapshot(out) == first
    day = dt.date(2024, 5, 3)
    r = run(since=day, until=day)
    assert r.objects == 2 and _snapshot(out) == first

    # the day's objects change: that day is replaced, the others stay as they were
    for path in (orders_root / "raw" / "orders").iterdir():
        if path.name.endswith(".parquet"):
            path.unlink()
    r = run(since=day, until=day)
    after = _snapshot(out)
    assert r.objects == 1
    keep = [row for row in first["rows"] if not str(row).count("2024-05-05.parquet")]
    assert after["rows"] == keep and len(keep) < len(first["rows"])

    # a day whose objects are all gone loses its partition on a run over that day
    for path in (orders_root / "raw" / "orders").iterdir():
        if dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).date() == day:
            path.unlink()
    r = run(since=day, until=day)
    assert r.objects == 0 and r.removed
    assert not (out / "orders" / "dt=2024-05-03").exists()
    assert (out / "orders" / "dt=2024-05-01").is_dir()


def test_cli_backfill_prints_the_summary(spark, orders_root, tmp_path):
    from typer.testing import CliRunner

    from headwater.cli import app

    shutil.copy(ROOT / "Pulumi.local.yaml", tmp_path / "Pulumi.local.yaml")
    result = CliRunner().invoke(app, [
        "backfill", "--pipeline", "orders", "--project-dir", str(tmp_path),
        "--root", str(orders_root), "--output", str(tmp_path / "out"),
        "--artifacts", str(tmp_path / "dist"), "--since", "2024-05-01", "--until", "2024-05-01"])
    assert result.exit_code == 0, result.output
    assert "headwater backfill" in result.output and "orders" in result.output
    assert (tmp_path / "out" / "orders" / "dt=2024-05-01").is_dir()
    assert not (tmp_path / "out" / "orders" / "dt=2024-05-02").exists()
    bad = CliRunner().invoke(app, ["backfill", "--pipeline", "orders", "--project-dir",
                                   str(tmp_path), "--since", "May"])
    assert bad.exit_code == 1 and "not a date" in bad.output


def test_package_only_entry_runs_the_backfill_from_the_artifact(spark, orders_root, tmp_path,
                                                                monkeypatch):
    """What a managed Spark service runs: backfill_main.py from the artifact (here in this
    process, on the test session), with the artifact shipped as an archive."""
    import runpy
    import sys
    import zipfile

    from typer.testing import CliRunner

    from headwater.cli import app

    shutil.copy(ROOT / "Pulumi.local.yaml", tmp_path / "Pulumi.local.yaml")
    dist = tmp_path / "dist"
    result = CliRunner().invoke(app, ["backfill", "--pipeline", "orders", "--project-dir",
                                      str(tmp_path), "--artifacts", str(dist), "--package-only"])
    assert result.exit_code == 0, result.output
    zipped = dist / "orders-spark.zip"
    shipped = tmp_path / "ship" / "orders-entry.zip"
    shipped.parent.mkdir()
    shutil.copy(zipped, shipped)
    spark.sparkContext.addArchive(str(shipped))
    unpacked = tmp_path / "driver"  # the driver's own copy, as --archives gives a cluster's
    zipfile.ZipFile(zipped).extractall(unpacked)
    monkeypatch.setenv("HEADWATER_ARCHIVE", str(unpacked))
    monkeypatch.setattr(sys, "path", list(sys.path))
    out = tmp_path / "out"
    argv = sys.argv
    sys.argv = ["backfill_main.py", "--root", str(orders_root), "--output", str(out),
                "--archive", "orders-entry.zip"]
    try:
        with pytest.raises(SystemExit) as done:
            runpy.run_path(str(dist / "backfill_main.py"), run_name="__main__")
    finally:
        sys.argv = argv
    assert done.value.code == 0
    assert sorted(p.name for p in (out / "orders").glob("dt=*")) == [
        "dt=2024-05-01", "dt=2024-05-02", "dt=2024-05-03"]
