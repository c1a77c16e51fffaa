"""``headwater replay`` on a deployed stack: the function's environment is put in place
for the replay only, and a cloud or chain it cannot run is refused before anything runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from headwater.replay import (
    ADAPTERS,
    ReplayError,
    function_environment,
    function_settings,
    replay_deployed,
)

ROOT = Path(__file__).resolve().parents[2]


def test_function_environment_is_the_settings_and_the_manifest_then_restored(monkeypatch):
    monkeypatch.setenv("HEADWATER_STREAM", "the-shells")
    monkeypatch.setenv("AWS_PROFILE", "operator")
    monkeypatch.delenv("HEADWATER_IDEMPOTENCY_TABLE", raising=False)
    settings = {"HEADWATER_STREAM": "orders-stream", "HEADWATER_IDEMPOTENCY_TABLE": "claims"}
    with function_environment(settings, {"pipeline": {"name": "orders"}}):
        assert os.environ["HEADWATER_STREAM"] == "orders-stream"
        assert os.environ["HEADWATER_IDEMPOTENCY_TABLE"] == "claims"
        assert os.environ["AWS_PROFILE"] == "operator"  # the caller's credentials stay
        with open(os.environ["HEADWATER_MANIFEST"], encoding="utf-8") as f:
            assert json.load(f) == {"pipeline": {"name": "orders"}}
        manifest = os.environ["HEADWATER_MANIFEST"]
    assert os.environ["HEADWATER_STREAM"] == "the-shells"
    assert "HEADWATER_IDEMPOTENCY_TABLE" not in os.environ
    assert not os.path.exists(manifest)


@pytest.mark.parametrize(("cloud", "manifest", "message"), [
    ("local", {}, "no replay for cloud 'local'"),
    ("aws", {"error": "ImportError: no module geo"}, "chain cannot be built: ImportError"),
])
def test_refused_before_anything_runs(cloud, manifest, message):
    with pytest.raises(ReplayError, match=message):
        replay_deployed(cloud, manifest, {})


def _example_stacks() -> list[str]:
    from headwater.spec import load_stack_file

    return sorted(p.name.split(".")[1] for p in ROOT.glob("Pulumi.*.yaml")
                  if load_stack_file(p).cloud in ADAPTERS)


@pytest.mark.parametrize("stack", _example_stacks())
def test_every_example_stacks_function_settings_build_its_runtime(stack, example_plugin,
                                                                   tmp_path, monkeypatch):
    """`headwater replay` on a deployed stack builds the cloud adapter's runtime from the
    output ``function_settings``: for every pipeline of every example stack, as the
    program under the cloud's mocks exports it, that runtime builds (clients are made,
    nothing is called), is the pipeline's, and claims in the function's idempotency store
    and reads its dead-letter bucket or container."""
    import importlib

    from headwater.local import local_manifests
    from headwater.spec import load_stack_file
    from headwater.testing.program import plan_stack

    graph = plan_stack(stack, tmp_path, ROOT)
    config = load_stack_file(ROOT / f"Pulumi.{stack}.yaml")
    # clients made offline: a region, no credentials; emulator hosts nobody answers on
    for name, value in {"AWS_DEFAULT_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "x",
                        "AWS_SECRET_ACCESS_KEY": "x", "STORAGE_EMULATOR_HOST": "http://127.0.0.1:9",
                        "FIRESTORE_EMULATOR_HOST": "127.0.0.1:9",
                        "HEADWATER_BIGQUERY_ANONYMOUS": "1"}.items():
        monkeypatch.setenv(name, value)
    if config.cloud == "gcp":  # the Secret Manager client wants credentials when made
        import google.auth
        from google.auth.credentials import AnonymousCredentials

        monkeypatch.setattr(google.auth, "default",
                            lambda *a, **kw: (AnonymousCredentials(), None))
    adapter = importlib.import_module(ADAPTERS[config.cloud])
    assert sorted(graph.outputs["function_settings"]) == sorted(
        p.name for p in config.pipelines)
    for spec in config.pipelines:
        settings = function_settings(graph.outputs, spec.name, stack)
        (manifest,) = local_manifests(config, [spec.name])
        adapter._reset()
        try:
            with function_environment(settings, manifest):
                rt = adapter.reload()
        finally:
            adapter._reset()
        assert rt.engine.pipeline == spec.name
        assert rt.idempotency is not None, "a deployed function always claims"
        store = rt.engine.deadletter.store()
        assert store.location in (settings.get("HEADWATER_DEADLETTER_BUCKET"),
                                  settings.get("HEADWATER_DEADLETTER_CONTAINER"))
        assert rt.engine.deadletter.prefix == spec.deadletter.prefix
        lookups = {s.with_["table"] for s in spec.transforms if s.use == "enrich"}
        assert set(getattr(rt.engine.ctx.lookup, "tables", ())) == lookups, spec.name
