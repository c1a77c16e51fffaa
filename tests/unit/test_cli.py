"""The ``headwater`` CLI through typer's CliRunner (in process), and a scaffolded plugin
package really installed and tested in subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml
from typer.testing import CliRunner

from headwater.cli import app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "orders"

cli = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None):
    return cli.invoke(app, list(args), env=env)


def write_stack(folder: Path, pipelines: list[dict], stack: str = "t") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"config": {"headwater:cloud": "local", "headwater:pipelines": pipelines}}
    (folder / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(doc))
    return folder


# -- validate -----------------------------------------------------------------------------


def test_validate_ok_on_the_local_stack(example_plugin):
    result = invoke("validate", "--stack", "local", "--project-dir", str(ROOT))
    assert result.exit_code == 0, result.output
    assert "ok: 2 pipeline(s) valid" in result.output
    assert "orders" in result.output and "country_name" in result.output


def test_validate_names_pipeline_step_and_setting_of_bad_settings(tmp_path):
    project = write_stack(tmp_path, [{
        "name": "orders", "source": {"prefix": "raw/"}, "sink": {"table": "orders"},
        "transforms": [{"use": "require", "with": {"fields": ["id"]}},
                       {"use": "cents", "with": {"source": "value", "round": "sideways"}}]}])
    result = invoke("validate", "--stack", "t", "--project-dir", str(project))
    assert result.exit_code == 1
    assert "error:" in result.output
    assert "pipeline 'orders'" in result.output and "step 1" in result.output
    assert "(cents): setting 'round'" in result.output


def test_validate_reports_every_bad_step_in_one_run(tmp_path):
    project = write_stack(tmp_path, [
        {"name": "orders", "source": {"prefix": "raw/orders/"}, "sink": {"table": "orders"},
         "transforms": [{"use": "cent"}, {"use": "cents", "with": {"round": "up"}}]},
        {"name": "clicks", "source": {"prefix": "raw/clicks/"}, "sink": {"table": "clicks"},
         "transforms": [{"use": "require", "with": {"fields": []}}]}])
    result = invoke("validate", "--stack", "t", "--project-dir", str(project))
    assert result.exit_code == 1
    assert "pipeline 'orders', step 0: unknown transform 'cent'. Did you mean: cents?" in result.output
    assert "pipeline 'orders', step 1 (cents): setting 'round'" in result.output
    assert "pipeline 'clicks', step 0 (require): setting 'fields'" in result.output


def test_validate_reports_spec_errors_with_their_config_path(tmp_path):
    project = write_stack(tmp_path, [{"name": "orders", "source": {"prefix": "raw/"}, "sink": {}}])
    result = invoke("validate", "--stack", "t", "--project-dir", str(project))
    assert result.exit_code == 1
    assert "headwater:pipelines[0].sink.table: Field required" in result.output


def test_validate_unknown_stack_file(tmp_path):
    result = invoke("validate", "--stack", "nope", "--project-dir", str(tmp_path))
    assert result.exit_code == 1 and "Pulumi.nope.yaml not found" in result.output


# -- transforms list ----------------------------------------------------------------------


def test_transforms_list_json_rows():
    result = invoke("transforms", "list", "--json")
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert {"cents", "enrich", "normalize", "pseudonymize", "require", "schema"} <= set(rows)
    cents = rows["cents"]
    assert set(cents) == {"name", "distribution", "version", "target", "doc", "error"}
    assert (cents["distribution"], cents["target"], cents["error"]) == (
        "headwater", "transforms.builtins.cents:make", "")
    assert cents["doc"].startswith("Convert the decimal amount")


def test_transforms_list_table():
    result = invoke("transforms", "list")
    assert result.exit_code == 0
    assert "headwater transforms" in result.output and "enrich" in result.output


# -- transforms new -----------------------------------------------------------------------


def test_transforms_new_writes_the_package(tmp_path):
    result = invoke("transforms", "new", "mask_email", "--dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    pkg = tmp_path / "headwater-mask-email"
    assert sorted(p.relative_to(pkg).as_posix() for p in pkg.rglob("*") if p.is_file()) == [
        "README.md", "pyproject.toml", "src/headwater_mask_email/__init__.py",
        "tests/test_mask_email.py"]
    pyproject = (pkg / "pyproject.toml").read_text()
    assert 'name = "headwater-mask-email"' in pyproject
    assert '[project.entry-points."headwater.transforms"]' in pyproject
    assert 'mask_email = "headwater_mask_email:make"' in pyproject
    source = (pkg / "src/headwater_mask_email/__init__.py").read_text()
    assert "def make(*," in source and source.startswith('"""mask_email:')
    imports = [ln for ln in source.splitlines() if ln.startswith(("import ", "from "))]
    assert not [ln for ln in imports if "headwater" in ln]  # a plugin needs nothing from us


@pytest.mark.parametrize("name", ["Mask", "mask-email", "1mask", "class", "", "x" * 41, "a b"])
def test_transforms_new_refuses_bad_names(tmp_path, name):
    result = invoke("transforms", "new", name, "--dir", str(tmp_path))
    assert result.exit_code != 0
    assert "invalid transform name" in result.output
    assert not list(tmp_path.iterdir())


def test_transforms_new_never_overwrites(tmp_path):
    existing = tmp_path / "headwater-geo2"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    result = invoke("transforms", "new", "geo2", "--dir", str(tmp_path))
    assert result.exit_code == 1 and "already exists" in result.output
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]


def test_transforms_new_warns_when_the_name_is_already_installed(tmp_path):
    result = invoke("transforms", "new", "cents", "--dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "headwater-cents" / "pyproject.toml").is_file()
    text = " ".join(result.output.split())
    assert "warning: 'cents' is already an installed transform" in text
    assert "transforms.builtins.cents:make" in text and "headwater" in text
    assert "claimed twice" in text
    fresh = invoke("transforms", "new", "brand_new_name", "--dir", str(tmp_path))
    assert fresh.exit_code == 0 and "warning" not in fresh.output


def test_scaffolded_package_installs_passes_its_tests_and_is_listed(tmp_path):
    assert invoke("transforms", "new", "tidy_text", "--dir", str(tmp_path)).exit_code == 0
    pkg = tmp_path / "headwater-tidy-text"
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(site), str(pkg)], check=True)
    env = {**os.environ, "PYTHONPATH": str(site)}
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            str(pkg / "tests")], cwd=pkg, env=env, capture_output=True, text=True)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "3 passed" in tests.stdout
    listed = subprocess.run([sys.executable, "-m", "headwater", "transforms", "list", "--json"],
                            env=env, capture_output=True, text=True, check=True)
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert rows["tidy_text"]["distribution"] == "headwater-tidy-text"
    assert rows["tidy_text"]["target"] == "headwater_tidy_text:make"
    assert rows["tidy_text"]["error"] == ""


# -- run ------------------------------------------------------------------------------------


@pytest.fixture
def bucket(tmp_path: Path) -> Path:
    dest = tmp_path / "bucket"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("deadletter", "*.py"))
    return dest


def run_args(bucket: Path, warehouse: Path, *extra: str) -> list[str]:
    return ["run", "--stack", "local", "--project-dir", str(ROOT), "--root", str(bucket),
            "--warehouse", str(warehouse), "--no-progress", *extra]


def summary_row(output: str, pipeline: str) -> list[str]:
    for line in output.splitlines():
        cells = line.split()
        if cells and cells[0] == pipeline:
            return cells
    raise AssertionError(f"no summary row for {pipeline}:\n{output}")


def test_run_prints_the_summary_and_a_rerun_does_nothing(example_plugin, bucket, tmp_path):
    wh = tmp_path / "w.duckdb"
    env = {"HEADWATER_SECRET_EMAIL_KEY": "k"}
    first = invoke(*run_args(bucket, wh), env=env)
    assert first.exit_code == 0, first.output
    # pipeline objects skipped failed in written dropped dead-lettered retries secs
    assert summary_row(first.output, "orders")[1:9] == ["5", "0", "0", "28", "24", "0", "4", "0"]
    assert summary_row(first.output, "signups")[1:9] == ["1", "0", "0", "6", "5", "0", "1", "0"]
    with duckdb.connect(str(wh), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM orders").fetchone() == (24,)

    second = invoke(*run_args(bucket, wh), env=env)
    assert second.exit_code == 0
    assert summary_row(second.output, "orders")[1:6] == ["0", "5", "0", "0", "0"]
    assert summary_row(second.output, "signups")[1:6] == ["0", "1", "0", "0", "0"]
    with duckdb.connect(str(wh), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM orders").fetchone() == (24,)


def test_run_exits_non_zero_naming_the_failed_object(example_plugin, bucket, tmp_path):
    env = {"HEADWATER_SECRET_EMAIL_KEY": ""}
    result = invoke(*run_args(bucket, tmp_path / "w.duckdb"), env=env)
    assert result.exit_code == 1
    assert "pipeline 'signups', object 'raw/signups/2024-05-01.csv'" in result.output
    assert "HEADWATER_SECRET_EMAIL_KEY" in result.output
    assert summary_row(result.output, "orders")[1] == "5"  # the other pipeline still ran


def test_run_one_pipeline_and_unknown_pipeline(bucket, tmp_path):
    ok = invoke(*run_args(bucket, tmp_path / "w.duckdb", "--pipeline", "orders"))
    assert ok.exit_code == 0, ok.output
    assert "signups" not in ok.output.split("warehouse:")[0]
    bad = invoke(*run_args(bucket, tmp_path / "w.duckdb", "--pipeline", "nope"))
    assert bad.exit_code == 1 and "no pipeline 'nope'; have: orders, signups" in bad.output


def test_run_reprocess_keeps_one_copy(bucket, tmp_path):
    wh = tmp_path / "w.duckdb"
    assert invoke(*run_args(bucket, wh, "-p", "orders")).exit_code == 0
    again = invoke(*run_args(bucket, wh, "-p", "orders", "--reprocess"))
    assert summary_row(again.output, "orders")[1:3] == ["5", "0"]
    with duckdb.connect(str(wh), read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT order_id) FROM orders").fetchone() == (24, 24)


def test_run_missing_root(tmp_path):
    result = invoke(*run_args(tmp_path / "nowhere", tmp_path / "w.duckdb"))
    assert result.exit_code == 1 and "is not a folder" in result.output


def test_run_with_the_progress_bar_and_a_locked_warehouse(bucket, tmp_path):
    wh = tmp_path / "w.duckdb"
    args = [a for a in run_args(bucket, wh, "-p", "orders") if a != "--no-progress"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert summary_row(result.output, "orders")[1] == "5"
    # another process holding the DuckDB file: a clear error, not a traceback
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys; "
                               f"c = duckdb.connect({str(wh)!r}); print('ready', flush=True); "
                               "sys.stdin.read()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        locked = invoke(*args)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert locked.exit_code == 1 and "error: IOException" in locked.output


def _aws_project(folder: Path, **changes) -> Path:
    """The example AWS stack (without the plugin step) beside a copy of the real program;
    ``changes`` ({pipeline: {field: value}}) applied."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "__main__.py", folder / "__main__.py")
    shutil.copy(ROOT / "Pulumi.yaml", folder / "Pulumi.yaml")
    doc = yaml.safe_load((ROOT / "Pulumi.aws.yaml").read_text())
    for p in doc["config"]["headwater:pipelines"]:
        p["transforms"] = [s for s in p["transforms"] if s["use"] != "country_name"]
        for key, value in changes.get(p["name"], {}).items():
            p[key] = value
    (folder / "Pulumi.t.yaml").write_text(yaml.safe_dump(doc))
    return folder


def test_validate_runs_the_clouds_own_rules_like_a_preview(tmp_path):
    ok = invoke("validate", "--stack", "t", "--project-dir", str(_aws_project(tmp_path / "ok")))
    assert ok.exit_code == 0, ok.output
    no_columns = _aws_project(tmp_path / "bad", signups={"sink": {"table": "signups"}})
    result = invoke("validate", "--stack", "t", "--project-dir", str(no_columns))
    assert result.exit_code == 1
    assert "pipeline 'signups': sink.columns is empty" in result.output
    assert "Firehose converts records to Parquet" in result.output


def test_validate_refuses_an_unknown_column_type_naming_the_column(tmp_path):
    bad = _aws_project(tmp_path, signups={"sink": {"table": "signups",
                                                   "columns": {"email": "strng"}}})
    result = invoke("validate", "--stack", "t", "--project-dir", str(bad))
    assert result.exit_code == 1
    assert "sink.columns: column 'email': unknown type 'strng'" in result.output
