"""User text reaches the terminal as written: rich markup (``[b]``) and emoji codes
(``:cloud:``) in config values, names, object keys and plugin docs are printed literally."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from headwater.cli import app

cli = CliRunner()
TRICKY = "[bold]x[/bold]:cloud:"


@pytest.fixture(autouse=True)
def wide_consoles(monkeypatch):
    """Wide enough that no table wraps a cell (the consoles are made at import time)."""
    import headwater.cli as cli_module

    for c in (cli_module.console, cli_module.err):
        monkeypatch.setattr(c, "width", 300)


def invoke(*args: str):
    result = cli.invoke(app, list(args), env={"COLUMNS": "300"})
    return result, result.output


def stack(folder: Path, config: dict) -> str:
    (folder / "Pulumi.t.yaml").write_text(yaml.safe_dump({"config": config}))
    return str(folder)


def test_a_spec_error_keeps_its_config_path_and_the_value(tmp_path):
    project = stack(tmp_path, {"headwater:cloud": "lcoal", "headwater:pipelines": []})
    result, out = invoke("validate", "--stack", "t", "--project-dir", project)
    assert result.exit_code == 1
    assert "headwater:cloud: " in out and "☁" not in out, out


def test_an_unknown_transform_name_is_printed_as_written(tmp_path):
    project = stack(tmp_path, {"headwater:cloud": "local", "headwater:pipelines": [
        {"name": "p", "source": {"prefix": "raw/"}, "sink": {"table": "t"},
         "transforms": [{"use": TRICKY}]}]})
    result, out = invoke("validate", "--stack", "t", "--project-dir", project)
    assert result.exit_code == 1
    assert f"unknown transform {TRICKY!r}" in out, out


def test_the_validate_table_shows_prefixes_as_written(tmp_path):
    project = stack(tmp_path, {"headwater:cloud": "local", "headwater:pipelines": [
        {"name": "p", "source": {"prefix": f"raw/{TRICKY}/"}, "sink": {"table": "t"}}]})
    result, out = invoke("validate", "--stack", "t", "--project-dir", project)
    assert result.exit_code == 0, out
    assert f"raw/{TRICKY}/" in out, out


def test_a_failed_object_key_is_printed_as_written(tmp_path):
    project = stack(tmp_path, {"headwater:cloud": "local", "headwater:pipelines": [
        {"name": "p", "source": {"prefix": "raw/"}, "sink": {"table": "t"},
         "transforms": [{"use": "enrich", "with": {"table": "nowhere", "key": "id",
                                                    "fields": ["x"]}}]}]})
    root = tmp_path / "bucket"
    (root / "raw").mkdir(parents=True)
    key = "raw/[red]x:cloud:.ndjson"  # a file name cannot hold the "/" of "[/bold]"
    (root / key).write_text('{"id": 1}\n')
    result, out = invoke("run", "--stack", "t", "--project-dir", project, "--root", str(root),
                         "--warehouse", str(tmp_path / "w.duckdb"), "--no-progress")
    assert result.exit_code == 1
    assert f"object {key!r}" in out, out


def test_transforms_list_shows_docs_and_errors_as_written(monkeypatch):
    import transforms.registry as registry_module

    def shout(record, ctx):
        """Upper-case [bold]every[/bold] value :cloud: fast."""
        return record

    reg = registry_module.Registry.from_objects({"shout": shout})
    monkeypatch.setattr(registry_module, "default_registry", lambda: reg)
    result, out = invoke("transforms", "list")
    assert result.exit_code == 0
    assert "Upper-case [bold]every[/bold] value :cloud: fast." in out, out


@pytest.mark.parametrize("name", ["[x]", "a:cloud:b"])
def test_transforms_new_refusal_shows_the_name_as_written(tmp_path, name):
    result, out = invoke("transforms", "new", name, "--dir", str(tmp_path))
    assert result.exit_code != 0
    assert repr(name) in out or name in out, out
