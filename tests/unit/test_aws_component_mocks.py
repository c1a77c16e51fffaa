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

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
REGION = "eu-west-1"
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


def _outputs(typ: str, name: str, inputs: dict[str, Any], rid: str) -> tuple[str, dict[str, Any]]:
    """The id and state AWS would return for a resource (formats as AWS writes them)."""
    state = dict(inputs)
    arn_head = f"arn:aws:{{}}:{REGION}:{ACCOUNT}:"
    if typ == "aws:s3/bucket:Bucket":
        bucket = inputs.get("bucket") or rid or f"{inputs.get('bucketPrefix', name)}20240501"
        state.update(bucket=bucket, arn=f"arn:aws:s3:::{bucket}")
        return bucket, state
    if typ == "aws:sqs/queue:Queue":
        qname = inputs.get("name") or f"{name}-abc1234"
        url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{qname}"
        state.update(name=qname, arn=arn_head.format("sqs") + qname, url=url)
        return url, state
    simple = {
        "aws:lambda/function:Function": ("lambda", "function:"),
        "aws:cloudwatch/logGroup:LogGroup": ("logs", "log-group:"),
        "aws:dynamodb/table:Table": ("dynamodb", "table/"),
        "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream": ("firehose",
                                                                      "deliverystream/"),
        "aws:iam/role:Role": ("iam", "role/"),
        "aws:sns/topic:Topic": ("sns", ""),
        "aws:cloudwatch/metricAlarm:MetricAlarm": ("cloudwatch", "alarm:"),
        "aws:glue/catalogDatabase:CatalogDatabase": ("glue", "database/"),
        "aws:glue/catalogTable:CatalogTable": ("glue", "table/"),
        "aws:lambda/eventSourceMapping:EventSourceMapping": ("lambda", "event-source-mapping:"),
    }
    if typ in simple:
        service, kind = simple[typ]
        rname = inputs.get("name") or rid or f"{name}-abc1234"
        head = f"arn:aws:iam::{ACCOUNT}:" if service == "iam" else arn_head.format(service)
        state.update(name=rname, arn=head + kind + rname)
        return rid or rname, state
    return rid or f"{name}-id", state


class Recorder(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: dict[tuple[str, str], Res] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        rid, state = _outputs(args.typ, args.name, dict(args.inputs), args.resource_id or "")
        res = self.resources.setdefault((args.typ, args.name), Res(args.typ, args.name, {}))
        res.inputs = dict(args.inputs)
        res.read = bool(args.resource_id) and not args.custom
        return rid, state

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {
            "aws:index/getCallerIdentity:getCallerIdentity": {
                "accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:user/ci", "id": ACCOUNT,
                "userId": "AIDA"},
            "aws:index/getRegion:getRegion": {
                "region": REGION, "name": REGION, "id": REGION, "description": "Europe (Ireland)",
                "endpoint": f"ec2.{REGION}.amazonaws.com"},
            "aws:index/getPartition:getPartition": {
                "partition": "aws", "id": "aws", "dnsSuffix": "amazonaws.com",
                "reverseDnsPrefix": "com.amazonaws"},
        }[args.token]


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
    monkeypatch.setattr(component, "_packaged", lambda stack: (lambda spec: str(artifact)))
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
