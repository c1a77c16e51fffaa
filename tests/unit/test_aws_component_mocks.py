"""Harness: run the real Pulumi program (``__main__.py``) under ``pulumi.runtime.set_mocks``
with the real pulumi_aws SDK, recording every resource (type, name, inputs, parent).

The mocks stand in for the Pulumi engine and the AWS provider only: they answer each
registration with the outputs AWS would give (names, ARNs, URLs in AWS's real formats), so
the program's wiring and its plan-time checks run exactly as under ``pulumi preview``.
The tests of this file check the harness itself; the component tests import it.
"""

from __future__ import annotations

import json
import runpy
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from pulumi.runtime import mocks as pulumi_mocks

with warnings.catch_warnings():  # pulumi_aws warns about its own deprecated V2 classes
    warnings.simplefilter("ignore", DeprecationWarning)
    import components.aws as component
from components.aws.mocks import AwsMocks

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = "headwater:aws:Pipeline"


@dataclass
class Res:
    typ: str
    name: str
    inputs: dict[str, Any]
    parent: str = ""
    read: bool = False
    protect: bool = False


@dataclass
class Graph:
    resources: list[Res] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    def of(self, typ: str) -> list[Res]:
        return [r for r in self.resources if r.typ == typ]

    def one(self, typ: str, name: str) -> Res:
        found = [r for r in self.resources if r.typ == typ and r.name == name]
        assert len(found) == 1, f"{typ} {name}: {len(found)} found"
        return found[0]

    def children(self, component_name: str) -> list[Res]:
        urn_tail = f"{PIPELINE}::{component_name}"
        return [r for r in self.resources if r.parent.endswith(urn_tail)]


class Recorder(AwsMocks):
    def __init__(self) -> None:
        super().__init__()
        self.resources: dict[tuple[str, str], Res] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        rid, state = super().new_resource(args)
        res = self.resources.setdefault((args.typ, args.name), Res(args.typ, args.name, {}))
        res.inputs = dict(args.inputs)
        res.read = bool(args.resource_id) and not args.custom
        return rid, state


class Monitor(pulumi_mocks.MockMonitor):
    """Also records each resource's parent URN."""

    def __init__(self, mocks: Recorder) -> None:
        super().__init__(mocks)
        self.recorder = mocks

    def _note(self, request, read: bool) -> None:
        res = self.recorder.resources.setdefault((request.type, request.name),
                                                 Res(request.type, request.name, {}))
        res.parent, res.read = request.parent, read
        res.protect = bool(getattr(request, "protect", False))

    def RegisterResource(self, request):
        self._note(request, read=False)
        return super().RegisterResource(request)

    def ReadResource(self, request):
        self._note(request, read=True)
        return super().ReadResource(request)



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
    """Run ``program`` as a Pulumi program under mocks; return what it registered and
    exported. Raises what the program raises."""
    recorder = Recorder()
    monitor = Monitor(recorder)
    pulumi.runtime.settings.set_root_resource(None)  # a fresh stack, no earlier exports
    pulumi.runtime.set_mocks(recorder, project="headwater", stack="aws", preview=False,
                             monitor=monitor)
    exported: dict[str, Any] = {}

    @pulumi.runtime.test
    def wrapped():
        program()
        # Exports land on the root stack; resolve them like the engine would.
        stack = pulumi.runtime.get_root_resource()
        return pulumi.Output.from_input(dict(stack.outputs)).apply(exported.update)

    wrapped()
    return Graph(list(recorder.resources.values()), exported)


def run_program(config: dict[str, Any], artifact: Path, monkeypatch: pytest.MonkeyPatch) -> Graph:
    """Run the real ``__main__.py`` with stack ``config`` (``headwater:*`` / ``aws:*`` keys)."""
    # The packaging API builds wheels; this test is about the Pulumi program.
    monkeypatch.setattr(component, "packaged", lambda stack: (lambda spec: str(artifact)))
    monkeypatch.chdir(ROOT)
    pulumi.runtime.set_all_config(
        {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()})
    try:
        return run(lambda: runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__"))
    finally:
        pulumi.runtime.set_all_config({})


def test_harness_records_resources_parents_and_outputs(tmp_path, monkeypatch):
    graph = run_program(example_config(), fake_artifact(tmp_path), monkeypatch)
    pipelines = graph.of(PIPELINE)
    assert sorted(r.name for r in pipelines) == ["orders", "signups"]
    assert graph.children("orders") and graph.children("signups")
    assert set(graph.outputs) >= {"raw_buckets", "queue_urls", "function_names",
                                  "athena_queries"}
