"""``headwater package`` through the CLI, offline, for the running interpreter's platform."""

from __future__ import annotations

import hashlib
import platform
import sys
from pathlib import Path

from typer.testing import CliRunner

from headwater.cli import app

HERE_PY = f"{sys.version_info.major}.{sys.version_info.minor}"
HERE_ARCH = "arm64" if platform.machine().lower() in ("aarch64", "arm64") else "x86_64"
OTHER_ARCH = "x86_64" if HERE_ARCH == "arm64" else "arm64"

STACK = """
config:
  headwater:cloud: aws
  headwater:python: "{python}"
  headwater:arch: {arch}
  headwater:pipelines:
    - name: orders
      source: {{prefix: raw/orders/, format: ndjson}}
      transforms:
        - use: cents
          with: {{source: value, target: value_cents}}
      sink: {{table: orders}}
    - name: clicks
      source: {{prefix: raw/clicks/, format: csv}}
      transforms:
        - use: require
          with: {{fields: [id]}}
      sink: {{table: clicks}}
"""


def _project(tmp_path: Path, arch: str = HERE_ARCH, python: str = HERE_PY) -> Path:
    (tmp_path / "Pulumi.t.yaml").write_text(STACK.format(python=python, arch=arch))
    return tmp_path


def _package(project: Path, *extra: str):
    return CliRunner().invoke(app, [
        "package", "--stack", "t", "--project-dir", str(project), "--out",
        str(project / "dist"), "--wheelhouse", str(project / "wheels"), "--offline", *extra])


def test_package_writes_one_artifact_per_pipeline_and_prints_size_and_sha(tmp_path):
    result = _package(_project(tmp_path))
    assert result.exit_code == 0, result.output
    for name in ("orders", "clicks"):
        path = tmp_path / "dist" / "t" / f"{name}-lambda.zip"
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert digest[:12] in result.output  # the table folds long cells, never cuts them
        assert name in result.output
    assert "KiB" in result.output


def test_package_one_pipeline(tmp_path):
    result = _package(_project(tmp_path), "--pipeline", "clicks")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "dist" / "t").glob("*.zip")) == ["clicks-lambda.zip"]
    result = _package(tmp_path, "--pipeline", "nope")
    assert result.exit_code == 1 and "no pipeline 'nope'" in result.output


def test_package_offline_without_wheels_fails_with_the_missing_wheel(tmp_path):
    result = _package(_project(tmp_path, arch=OTHER_ARCH, python="3.12"))
    assert result.exit_code == 1
    assert "offline build: no wheel of orjson==" in result.output
    assert not list((tmp_path / "dist").rglob("*.zip"))


def test_package_shows_the_bytecode_python_or_why_there_is_none(tmp_path, monkeypatch):
    from test_packaging_bytecode import _orjson_wheel

    (tmp_path / "here").mkdir()
    (tmp_path / "other").mkdir()
    result = _package(_project(tmp_path / "here"))
    assert result.exit_code == 0, result.output
    assert f"Python {sys.version.split()[0]}" in result.output
    assert "note:" not in result.output

    other = "3.12" if HERE_PY != "3.12" else "3.13"
    project = _project(tmp_path / "other", python=other)
    _orjson_wheel(project / "wheels", other)
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    result = _package(project)
    assert result.exit_code == 0, result.output
    assert "none (see note)" in result.output
    notes = [line for line in result.output.splitlines() if line.startswith("note:")]
    assert notes == [f"note: no python{other} here: the function compiles its modules at cold "
                     f"start (~60 ms); put python{other} on PATH to ship bytecode"]
