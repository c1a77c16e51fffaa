"""The example plugin distribution (examples/plugins/headwater-geo), really installed by the
``example_plugin`` fixture: found through its entry point and run by the local runner with
no change to headwater."""

from __future__ import annotations

import json

import duckdb
from typer.testing import CliRunner

from headwater.cli import app
from headwater.local import local_runner
from headwater.spec import parse_stack


def test_transforms_list_shows_country_name_from_headwater_geo(example_plugin):
    result = CliRunner().invoke(app, ["transforms", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = [r for r in json.loads(result.stdout) if r["name"] == "country_name"]
    assert [(r["distribution"], r["version"], r["target"], r["error"]) for r in rows] == [
        ("headwater-geo", "1.0.0", "headwater_geo:make", "")]
    assert rows[0]["doc"].startswith("Add the country name")
    table = CliRunner().invoke(app, ["transforms", "list"])
    assert "country_name" in table.output and "headwater-geo" in table.output


def test_a_pipeline_using_the_plugin_runs_locally(example_plugin, tmp_path):
    root = tmp_path / "bucket"
    (root / "in").mkdir(parents=True)
    (root / "in" / "people.csv").write_text("id,cc\n1,de\n2, se \n3,zz\n")
    stack = parse_stack({"headwater:pipelines": [{
        "name": "people", "source": {"prefix": "in/", "format": "csv"},
        "transforms": [{"use": "country_name",
                        "with": {"field": "cc", "target": "country", "on_unknown": "error"}}],
        "sink": {"table": "people", "columns": {"id": "int", "cc": "string", "country": "string"}},
    }]})
    report = local_runner(stack, root, tmp_path / "w.duckdb").run()
    assert report.ok, report.errors
    people = report.pipelines[0].counters
    assert (people.received, people.written, people.dead_lettered) == (3, 2, 1)
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        assert con.execute("SELECT id, country FROM people ORDER BY id").fetchall() == [
            (1, "Germany"), (2, "Sweden")]
    [dead] = [json.loads(line) for f in (root / "deadletter" / "people").rglob("*.ndjson")
              for line in f.read_text().splitlines()]
    assert (dead["line"], dead["step"], dead["error_type"]) == (4, "0:country_name", "ValueError")
    assert "unknown country code 'zz'" in dead["message"]
