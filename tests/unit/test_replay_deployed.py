"""``headwater replay`` on a deployed stack: the function's environment is put in place
for the replay only, and a cloud or chain it cannot run is refused before anything runs."""

from __future__ import annotations

import json
import os

import pytest

from headwater.replay import ReplayError, function_environment, replay_deployed


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
