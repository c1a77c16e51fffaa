"""The baked manifest: built from the registry at plan time, loaded at run time by importing
each step's ``module:attr`` without scanning package metadata."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import pytest

from headwater.manifest import build_manifest
from headwater.spec import PipelineSpec, load_stack_file
from headwater.testing.doubles import MemoryDeadLetter, MemorySink
from runtimes.core.engine import Engine
from runtimes.core.manifest import (
    MANIFEST_NAME,
    ManifestError,
    load_manifest,
    load_steps,
)
from transforms.contract import Context
from transforms.registry import (
    PluginSettingsError,
    Registry,
    UnknownTransformError,
    default_registry,
)

ROOT = Path(__file__).resolve().parents[2]


def make_suffix(*, field: str, suffix: str = "!"):
    """Append ``suffix`` to ``field``."""

    def add(record, ctx):
        return {**record, field: f"{record[field]}{suffix}"}

    return add


@pytest.fixture(scope="module")
def orders() -> PipelineSpec:
    return load_stack_file(ROOT / "Pulumi.local.yaml").pipeline("orders")


def test_build_manifest_for_the_local_orders_pipeline(orders):
    m = build_manifest(orders)
    assert m["version"] == 1
    assert [(s["index"], s["use"], s["ref"]) for s in m["steps"]] == [
        (0, "schema", "transforms.builtins.schema:make"),
        (1, "cents", "transforms.builtins.cents:make"),
        (2, "normalize", "transforms.builtins.normalize:make"),
        (3, "enrich", "transforms.builtins.enrich:make"),
        (4, "require", "transforms.builtins.require:make"),
    ]
    version = importlib.metadata.version("headwater")
    assert all(s["distribution"] == "headwater" and s["version"] == version for s in m["steps"])
    assert m["steps"][1]["settings"] == {"source": "value", "target": "value_cents"}
    assert m["steps"][3]["settings"]["table"] == "users"
    # the pipeline is plain JSON with config names ("with", not "with_") and parses back
    assert m["pipeline"]["transforms"][1] == {"use": "cents", "with": {"source": "value",
                                                                      "target": "value_cents"}}
    assert PipelineSpec.model_validate(m["pipeline"]) == orders


def test_manifest_json_round_trip_and_the_steps_run(orders, tmp_path, monkeypatch):
    m = build_manifest(orders)
    path = tmp_path / MANIFEST_NAME
    path.write_text(json.dumps(m, sort_keys=True), encoding="utf-8")
    loaded = load_manifest(path)
    assert loaded == m

    # run time: no metadata scan (a deployed function must not pay for one)
    def no_scan(*args, **kwargs):
        raise AssertionError("importlib.metadata.entry_points called at run time")

    monkeypatch.setattr(importlib.metadata, "entry_points", no_scan)
    default_registry.cache_clear()
    try:
        steps = load_steps(loaded)
    finally:
        default_registry.cache_clear()
    assert [(s.index, s.name) for s in steps] == [(0, "schema"), (1, "cents"), (2, "normalize"),
                                                  (3, "enrich"), (4, "require")]
    assert steps[3].batch is not None  # enrich keeps its batched form through the manifest

    users = {"u1": {"user_id": "u1", "tier": "gold", "country": "FR"}}
    ctx = Context(lookup=lambda table, keys: {k: users[k] for k in keys if k in users})
    sink, dl = MemorySink(), MemoryDeadLetter()
    c = Engine("orders", steps, sink, dl, ctx).process_records([
        {"order_id": "o1", "user_id": "u1", "value": "12.50", "category": " books ",
         "ts": "2024-05-01T10:00:00Z"},
        {"order_id": "o2", "user_id": "nobody", "value": "1", "category": "x",
         "ts": "2024-05-01T10:00:00Z"},
    ])
    assert c.balanced() and (c.written, c.dead_lettered) == (1, 1)
    [rec] = sink.records
    assert (rec["order_id"], rec["value_cents"], rec["category"], rec["tier"], rec["country"]) == (
        "o1", 1250, "BOOKS", "gold", "FR")
    assert dl.entries[0]["step"] == "3:enrich"


def test_a_manifest_from_a_test_registry_round_trips():
    spec = PipelineSpec.model_validate({
        "name": "people", "source": {"prefix": "in/"}, "sink": {"table": "people"},
        "transforms": [{"use": "suffix", "with": {"field": "name", "suffix": "?"}}],
    })
    reg = Registry.from_objects({"suffix": make_suffix}, distribution="acme")
    m = build_manifest(spec, reg)
    assert m["steps"] == [{"index": 0, "use": "suffix", "ref": f"{__name__}:make_suffix",
                           "distribution": "acme", "version": "",
                           "settings": {"field": "name", "suffix": "?"}}]
    [step] = load_steps(json.loads(json.dumps(m)))
    assert step.fn({"name": "ada"}, Context()) == {"name": "ada?"}


def test_build_manifest_errors_name_pipeline_and_step():
    reg = Registry.from_objects({"suffix": make_suffix})
    spec = PipelineSpec.model_validate({
        "name": "people", "source": {"prefix": "in/"}, "sink": {"table": "people"},
        "transforms": [{"use": "suffix", "with": {"field": "a"}}, {"use": "sufix"}],
    })
    with pytest.raises(UnknownTransformError) as err:
        build_manifest(spec, reg)
    assert str(err.value).startswith("pipeline 'people', step 1: unknown transform 'sufix'. "
                                     "Did you mean: suffix?")
    spec = spec.model_copy(update={"transforms": spec.transforms[:1] + [
        spec.transforms[0].model_copy(update={"with_": {"field": "a", "colour": "red"}})]})
    with pytest.raises(PluginSettingsError) as err:
        build_manifest(spec, reg)
    assert str(err.value) == ("pipeline 'people', step 1 (suffix): setting 'colour': unknown "
                              "setting (accepted: field, suffix)")


def _manifest(steps):
    return {"version": 1, "pipeline": {"name": "orders"}, "steps": steps}


def test_a_missing_module_names_pipeline_step_and_distribution():
    m = _manifest([{"index": 2, "use": "geo", "ref": "acme_geo_not_installed:make",
                    "distribution": "acme-geo", "version": "1.2.0", "settings": {}}])
    with pytest.raises(ManifestError) as err:
        load_steps(m)
    assert str(err.value) == (
        "pipeline 'orders', step 2 (geo): cannot import acme_geo_not_installed:make from "
        "distribution acme-geo: ModuleNotFoundError: No module named 'acme_geo_not_installed'")
    assert isinstance(err.value.__cause__, ModuleNotFoundError)


def test_a_missing_attribute_and_bad_settings_are_manifest_errors():
    m = _manifest([{"index": 0, "use": "suffix", "ref": f"{__name__}:make_nothing",
                    "distribution": "acme", "settings": {}}])
    with pytest.raises(ManifestError, match=r"step 0 \(suffix\): cannot import .*make_nothing "
                                            r"from distribution acme: AttributeError"):
        load_steps(m)
    m = _manifest([{"index": 1, "use": "suffix", "ref": f"{__name__}:make_suffix",
                    "distribution": "acme", "settings": {"suffix": "x"}}])
    with pytest.raises(ManifestError) as err:
        load_steps(m)
    assert str(err.value) == ("pipeline 'orders', step 1 (suffix): setting 'field': "
                              "required setting is missing")


def test_manifest_version_and_file_errors(tmp_path):
    with pytest.raises(ManifestError, match="manifest version 2 is not 1"):
        load_steps({"version": 2, "steps": []})
    missing = tmp_path / MANIFEST_NAME
    with pytest.raises(ManifestError, match=r"not found: was the artifact built with "
                                            r"`headwater package`\?"):
        load_manifest(missing)
    missing.write_text("{not json")
    with pytest.raises(ManifestError, match="is not valid JSON"):
        load_manifest(missing)
