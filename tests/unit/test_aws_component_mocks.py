"""Harness: run the real Pulumi program (``__main__.py``) under ``pulumi.runtime.set_mocks``
with the real pulumi_aws SDK, recording every resource (type, name, inputs, parent).

The mocks stand in for the Pulumi engine and the AWS provider only: they answer each
registration with the outputs AWS would give (names, ARNs, URLs in AWS's real formats), so
the program's wiring and its plan-time checks run exactly as under ``pulumi preview``.
The tests of this file check the harness itself; the component tests import it.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.aws.mocks import AwsMocks
from headwater.testing import program as harness
from headwater.testing.program import Graph

__all__ = ["PIPELINE", "Graph", "example_config", "fake_artifact", "run", "run_program"]

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = "headwater:aws:Pipeline"


def example_config() -> dict[str, Any]:
    """The shipped example stack's config (Pulumi.aws.yaml), as Python values."""
    return dict(yaml.safe_load((ROOT / "Pulumi.aws.yaml").read_text(encoding="utf-8"))["config"])


def fake_artifact(folder: Path) -> Path:
    """A tiny zip standing in for the packaged function (packaging is tested elsewhere)."""
    path = folder / "function.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("runtimes/aws/handler.py", "def handler(event, context):\n    return {}\n")
    return path


def run(program: Callable[[], Any]) -> Graph:
    """Run ``program`` as a Pulumi program under AWS-shaped mocks."""
    return harness.run(program, AwsMocks(), stack="aws")


def run_program(config: dict[str, Any], artifact: Path, monkeypatch: pytest.MonkeyPatch) -> Graph:
    """Run the real ``__main__.py`` with stack ``config`` (``headwater:*`` / ``aws:*`` keys);
    every function gets ``artifact`` (the packaging API is tested elsewhere)."""
    return harness.run_program(config, AwsMocks(), artifact=artifact, stack="aws")


def test_harness_records_resources_parents_and_outputs(tmp_path, monkeypatch):
    graph = run_program(example_config(), fake_artifact(tmp_path), monkeypatch)
    pipelines = graph.of(PIPELINE)
    assert sorted(r.name for r in pipelines) == ["orders", "signups"]
    assert graph.children("orders") and graph.children("signups")
    assert set(graph.outputs) >= {"raw_buckets", "queue_urls", "function_names",
                                  "athena_queries"}
