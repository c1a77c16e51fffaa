"""The built-ins as the registry sees them: entry points, settings errors, docs."""

from __future__ import annotations

import importlib
import inspect

import pytest

from transforms.contract import Context, is_factory
from transforms.registry import PluginSettingsError, default_registry

BUILTINS = ["cents", "normalize", "require", "schema", "rename", "drop", "pseudonymize",
            "timestamp", "enrich"]


def test_every_builtin_is_registered_and_imports():
    registry = default_registry()
    for name in BUILTINS:
        plugin = registry.get(name)
        assert plugin.ref == f"transforms.builtins.{name}:make"
        assert is_factory(plugin.obj), name


@pytest.mark.parametrize("name", BUILTINS)
def test_make_takes_keyword_only_settings(name):
    make = importlib.import_module(f"transforms.builtins.{name}").make
    kinds = {p.kind for p in inspect.signature(make).parameters.values()}
    assert kinds == {inspect.Parameter.KEYWORD_ONLY}


@pytest.mark.parametrize("name", BUILTINS)
def test_docstrings_have_summary_and_example(name):
    module = importlib.import_module(f"transforms.builtins.{name}")
    for doc in (module.__doc__, module.make.__doc__):
        assert doc, name
        first = doc.strip().splitlines()[0]
        assert first.endswith(".") and len(first) < 100, first
        assert f"- use: {name}" in doc
        assert "->" in doc


def test_describe_reports_no_errors():
    rows = {r["name"]: r for r in default_registry().describe() if r["name"] in BUILTINS}
    assert set(rows) == set(BUILTINS)
    assert all(not r["error"] and r["doc"] for r in rows.values())


@pytest.mark.parametrize(
    ("name", "settings", "setting"),
    [
        ("cents", {"source": 5}, "source"),
        ("cents", {"round": "floor"}, "round"),
        ("cents", {"bogus": 1}, "bogus"),
        ("normalize", {"fields": {"a": "shout"}}, "fields"),
        ("normalize", {}, "fields"),
        ("require", {"fields": []}, "fields"),
        ("schema", {"fields": {"a": "int"}, "extra": "x"}, "extra"),
        ("rename", {"fields": {"a": "c", "b": "c"}}, "fields"),
        ("drop", {"fields": ["a"], "keep": ["b"]}, "keep"),
        ("pseudonymize", {"fields": ["a"], "algorithm": "md5"}, "algorithm"),
        ("timestamp", {"field": "a", "unit": "days"}, "unit"),
        ("enrich", {"table": "t", "key": "k", "on_missing": "ignore"}, "on_missing"),
        ("enrich", {"key": "k"}, "table"),
    ],
)
def test_bad_settings_name_pipeline_step_and_setting(name, settings, setting):
    with pytest.raises(PluginSettingsError) as info:
        default_registry().build(name, settings, pipeline="p", step=3)
    message = str(info.value)
    assert "pipeline 'p'" in message
    assert "step 3" in message
    assert f"setting {setting!r}" in message
    assert info.value.setting == setting


def test_built_transforms_run():
    registry = default_registry()
    ctx = Context(pipeline="p")
    record = {"value": "12.5", "email": " A@B.C "}
    for name, settings in [("cents", {}), ("normalize", {"fields": {"email": ["strip", "lower"]}}),
                           ("require", {"fields": ["value_cents"]})]:
        record = registry.build(name, settings, pipeline="p", step=0)(record, ctx)
    assert record == {"email": "a@b.c", "value_cents": 1250}
