"""The transform registry: built from objects, from entry points, and from a really
installed plugin distribution (tests/plugins/headwater-testplugins) that has a good, a
broken and a clashing plugin. Every error message is asserted, since it is the interface."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import transforms.registry as registry_module
from transforms.contract import Context, SettingsError
from transforms.registry import (
    GROUP,
    Plugin,
    PluginConflictError,
    PluginImportError,
    PluginSettingsError,
    Registry,
    UnknownTransformError,
    default_registry,
)

TESTPLUGINS = Path(__file__).resolve().parent.parent / "plugins" / "headwater-testplugins"


# -- small local plugins ---------------------------------------------------------------


def upper(record, ctx):
    """Upper-case every string value."""
    return {k: v.upper() if isinstance(v, str) else v for k, v in record.items()}


def make_scale(*, field: str, factor: int = 10):
    """Multiply one numeric field."""
    if not isinstance(factor, int) or factor <= 0:
        raise SettingsError("factor", "must be a positive integer")

    def scale(record, ctx):
        return {**record, field: record[field] * factor}

    return scale


def make_picky(*, mode: str):
    """A factory that refuses a value with a plain ValueError naming the setting."""
    if mode not in ("a", "b"):
        raise ValueError(f"mode: {mode!r} is not one of a, b")
    return upper


# -- from_objects ------------------------------------------------------------------------


def test_from_objects_builds_plain_transforms_and_factories():
    reg = Registry.from_objects({"upper": upper, "scale": make_scale})
    assert reg.names() == ["scale", "upper"]
    assert "upper" in reg and "nope" not in reg
    assert reg.build("upper")({"a": "x"}, Context()) == {"a": "X"}
    scale = reg.build("scale", {"field": "n", "factor": 3})
    assert scale({"n": 2}, Context()) == {"n": 6}
    plugin = reg.plugin("upper")
    assert plugin.ref == f"{__name__}:upper"
    assert plugin.distribution == "(in-memory)"


def test_from_objects_with_two_distributions_is_a_conflict():
    reg = Registry([Plugin("upper", f"{__name__}:upper", "dist-one", "1", upper),
                    Plugin("upper", f"{__name__}:make_scale", "dist-two", "2", make_scale)])
    with pytest.raises(PluginConflictError) as err:
        reg.get("upper")
    msg = str(err.value)
    assert "transform 'upper' is claimed by more than one distribution" in msg
    assert "dist-one" in msg and "dist-two" in msg
    assert "Uninstall one of them or rename its entry point." in msg
    assert err.value.distributions == ["dist-one", "dist-two"]


def test_same_distribution_twice_is_not_a_conflict():
    """An editable install can list one distribution's entry point twice."""
    p = Plugin("upper", f"{__name__}:upper", "headwater", "0.1.0")
    q = Plugin("upper", f"{__name__}:upper", "headwater", "0.1.0")
    assert Registry([p, q]).get("upper").obj is upper


def test_unknown_name_lists_close_matches_and_what_is_installed():
    reg = Registry.from_objects({"cents": upper, "rename": upper, "require": upper})
    with pytest.raises(UnknownTransformError) as err:
        reg.build("cent", pipeline="orders", step=2)
    msg = str(err.value)
    assert msg.startswith("pipeline 'orders', step 2: unknown transform 'cent'.")
    assert "Did you mean: cents?" in msg
    assert "Installed: cents, rename, require." in msg
    assert f"{GROUP!r} entry-point group" in msg
    assert err.value.close_matches == ["cents"]
    assert isinstance(err.value, LookupError)


def test_unknown_name_without_close_match_gives_no_hint():
    with pytest.raises(UnknownTransformError) as err:
        Registry.from_objects({"cents": upper}).get("zzzzzz")
    assert "Did you mean" not in str(err.value)
    assert err.value.close_matches == []


@pytest.mark.parametrize(
    ("name", "settings", "setting", "reason"),
    [
        ("scale", {"factor": 2}, "field", "required setting is missing"),
        ("scale", {"field": "n", "bogus": 1}, "bogus", "unknown setting (accepted: factor, field)"),
        ("scale", {"field": "n", "factr": 2}, "factr",
         "unknown setting; did you mean 'factor'? (accepted: factor, field)"),
        ("scale", {"field": "n", "factor": -1}, "factor", "must be a positive integer"),
        ("picky", {"mode": "z"}, "mode", "mode: 'z' is not one of a, b"),
        ("upper", {"x": 1}, "x",
         "transform 'upper' is a record transform upper(record, ctx) (two positional "
         "parameters without defaults), so it takes no settings (given: x). To take settings, "
         "write a factory whose parameters are keyword-only or have defaults and that returns "
         "the transform: def make(*, x=...): ... return upper (and point the entry point at "
         "make), or mark it with @factory"),
    ],
)
def test_bad_settings_name_pipeline_step_and_setting(name, settings, setting, reason):
    reg = Registry.from_objects({"scale": make_scale, "picky": make_picky, "upper": upper})
    with pytest.raises(PluginSettingsError) as err:
        reg.build(name, settings, pipeline="orders", step=1)
    assert str(err.value) == f"pipeline 'orders', step 1 ({name}): setting {setting!r}: {reason}"
    assert err.value.setting == setting
    assert err.value.where == "pipeline 'orders', step 1"
    assert err.value.transform == name
    assert isinstance(err.value.__cause__, SettingsError)


def test_factory_returning_a_non_callable_is_a_settings_error():
    def make_bad(*, n: int = 1):
        return 42

    with pytest.raises(PluginSettingsError, match=r"factory 'bad' returned int, not a transform"):
        Registry.from_objects({"bad": make_bad}).build("bad", pipeline="p", step=0)


# -- from entry points (fake ones, no installation) ---------------------------------------


class _Dist:
    def __init__(self, name: str, version: str) -> None:
        self.metadata = {"Name": name}
        self.version = version


def _fake_entry_points(monkeypatch, eps):
    import importlib.metadata

    def entry_points(*, group):
        assert group == GROUP
        return eps

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


def _ep(name, value, dist):
    """What importlib.metadata yields: name, value and the distribution that declared it."""
    return SimpleNamespace(name=name, value=value, group=GROUP, dist=dist)


def test_from_fake_entry_points_loads_and_reports_distribution(monkeypatch):
    dist = _Dist("acme-transforms", "2.1.0")
    _fake_entry_points(monkeypatch, [_ep("upper", f"{__name__} : upper", dist),
                                     _ep("scale", f"{__name__}:make_scale", dist)])
    reg = Registry.from_entry_points()
    plugin = reg.get("upper")
    assert plugin.ref == f"{__name__}:upper"  # blanks around ':' are tolerated
    assert (plugin.distribution, plugin.version) == ("acme-transforms", "2.1.0")
    assert plugin.obj is upper
    assert reg.build("scale", {"field": "n"})({"n": 1}, Context()) == {"n": 10}


def test_fake_entry_points_conflict_and_import_failure(monkeypatch):
    one, two = _Dist("acme-one", "1.0"), _Dist("acme-two", "3.0")
    _fake_entry_points(monkeypatch, [
        _ep("upper", f"{__name__}:upper", one),
        _ep("upper", f"{__name__}:make_scale", two),
        _ep("ghost", "acme_missing_module_xyz:make", two),
        _ep("noattr", f"{__name__}:does_not_exist", one),
    ])
    reg = Registry.from_entry_points()
    with pytest.raises(PluginConflictError) as err:
        reg.build("upper")
    assert (f"acme-one ({__name__}:upper), acme-two ({__name__}:make_scale)"
            in str(err.value))

    with pytest.raises(PluginImportError) as err:
        reg.get("ghost")
    assert str(err.value) == (
        "transform 'ghost' (entry point ghost = acme_missing_module_xyz:make, distribution "
        "acme-two 3.0) failed to import: ModuleNotFoundError: No module named "
        "'acme_missing_module_xyz'"
    )
    assert isinstance(err.value.__cause__, ModuleNotFoundError)

    with pytest.raises(PluginImportError, match=r"AttributeError: .*does_not_exist"):
        reg.get("noattr")

    rows = {(r["name"], r["distribution"]): r for r in reg.describe()}
    assert rows[("upper", "acme-one")]["error"] == "conflict: acme-one, acme-two"
    assert rows[("upper", "acme-two")]["error"] == "conflict: acme-one, acme-two"
    assert "ModuleNotFoundError" in rows[("ghost", "acme-two")]["error"]
    assert "failed to import" in rows[("noattr", "acme-one")]["error"]


# -- a really installed plugin distribution -------------------------------------------------


@pytest.fixture(scope="session")
def testplugins_dir(pip_install) -> Path:
    """tests/plugins/headwater-testplugins installed with pip into a fresh folder."""
    return pip_install(TESTPLUGINS)


@pytest.fixture
def installed(testplugins_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """The test plugins on ``sys.path`` for one test, with the cached registry rescanned."""
    monkeypatch.syspath_prepend(str(testplugins_dir))
    default_registry.cache_clear()
    yield default_registry()
    for mod in [m for m in sys.modules if m.startswith("headwater_testplugins")]:
        sys.modules.pop(mod, None)
    default_registry.cache_clear()


def test_installed_good_plugin_builds_with_settings(installed):
    plugin = installed.get("tp_upper")
    assert plugin.distribution == "headwater-testplugins"
    assert plugin.version == "0.0.1"
    assert plugin.ref == "headwater_testplugins.good:make"
    fn = installed.build("tp_upper", {"field": "name"}, pipeline="people", step=0)
    assert fn({"name": "ada"}, Context()) == {"name": "ADA"}
    with pytest.raises(PluginSettingsError) as err:
        installed.build("tp_upper", {"field": ""}, pipeline="people", step=3)
    assert str(err.value) == (
        "pipeline 'people', step 3 (tp_upper): setting 'field': field: must be a non-empty string"
    )


def test_installed_clash_with_builtin_names_both_distributions(installed):
    with pytest.raises(PluginConflictError) as err:
        installed.build("cents", {"source": "v", "target": "c"}, pipeline="orders", step=1)
    msg = str(err.value)
    assert "transform 'cents' is claimed by more than one distribution" in msg
    assert "headwater (transforms.builtins.cents:make)" in msg
    assert "headwater-testplugins (headwater_testplugins.good:cents)" in msg
    assert sorted(err.value.distributions) == ["headwater", "headwater-testplugins"]


def test_installed_broken_plugin_names_entry_point_distribution_and_cause(installed):
    with pytest.raises(PluginImportError) as err:
        installed.build("tp_broken", pipeline="orders", step=0)
    assert str(err.value) == (
        "transform 'tp_broken' (entry point tp_broken = headwater_testplugins.broken:make, "
        "distribution headwater-testplugins 0.0.1) failed to import: ImportError: "
        "headwater_testplugins.broken needs the package 'not_installed_dependency'"
    )
    assert isinstance(err.value.__cause__, ImportError)
    assert err.value.plugin.distribution == "headwater-testplugins"


def test_installed_describe_lists_healthy_plugins_and_reports_broken_ones(installed):
    rows = installed.describe()
    by = {(r["name"], r["distribution"]): r for r in rows}
    good = by[("tp_upper", "headwater-testplugins")]
    assert good["error"] == ""
    assert good["doc"] == "Upper-case ``field`` (a healthy plugin)."
    assert good["target"] == "headwater_testplugins.good:make"
    broken = by[("tp_broken", "headwater-testplugins")]
    assert "failed to import: ImportError" in broken["error"]
    assert "not_installed_dependency" in broken["error"]
    for dist in ("headwater", "headwater-testplugins"):
        error = by[("cents", dist)]["error"]
        assert error.startswith("conflict: ")  # order follows sys.path
        assert sorted(error.removeprefix("conflict: ").split(", ")) == [
            "headwater", "headwater-testplugins"]
    # the built-ins other than the clashing name stay healthy
    assert by[("rename", "headwater")]["error"] == ""


def test_registry_forgets_the_plugins_once_uninstalled(installed, monkeypatch):
    assert "tp_upper" in installed
    monkeypatch.undo()  # takes the plugin folder off sys.path again
    default_registry.cache_clear()
    assert "tp_upper" not in default_registry()
    assert default_registry().plugin("cents").distribution == "headwater"


def test_default_registry_is_scanned_once(monkeypatch):
    default_registry.cache_clear()
    calls = []
    real = registry_module.Registry.from_entry_points

    def counting():
        calls.append(1)
        return real()

    monkeypatch.setattr(registry_module.Registry, "from_entry_points", staticmethod(counting))
    try:
        assert default_registry() is default_registry()
        assert len(calls) == 1
    finally:
        default_registry.cache_clear()


def test_unknown_name_in_the_installed_registry_suggests_the_builtin():
    with pytest.raises(UnknownTransformError) as err:
        default_registry().build("cent", {"source": "v"}, pipeline="orders", step=1)
    assert "pipeline 'orders', step 1: unknown transform 'cent'. Did you mean: cents?" in str(
        err.value)
    assert "cents" in err.value.close_matches
