"""``headwater plan``: the real Pulumi program evaluated for a stack under its cloud's
mocks, offline and without credentials, then checked three ways:

- :mod:`.schema`: every resource's inputs against the provider SDK's own types;
- :mod:`.names`: every physical name against the service's naming rule;
- :mod:`headwater.policies`: the policy rules, the same functions the CrossGuard pack runs.

Functions get a stand-in artifact (no packaging, no wheels, no network). The result is a
:class:`Plan`: the resource tree, a count per type and every :class:`Violation`.
"""

from __future__ import annotations

import tempfile
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from headwater.program import Graph, ProgramError, Res, plan_program

from .names import name_violations
from .schema import schema_violations
from .violation import Violation

__all__ = ["KEY_PROPERTIES", "Plan", "ProgramError", "Violation", "check_graph", "plan_stack"]

# type -> the properties a reader wants to see in the tree (each cloud adds its rows)
KEY_PROPERTIES: dict[str, tuple[str, ...]] = {
    "aws:s3/bucket:Bucket": ("bucket", "bucketPrefix"),
    "aws:sqs/queue:Queue": ("name", "visibilityTimeoutSeconds", "messageRetentionSeconds"),
    "aws:lambda/function:Function": ("name", "runtime", "architectures", "memorySize",
                                     "timeout"),
    "aws:lambda/eventSourceMapping:EventSourceMapping": ("batchSize", "scalingConfig"),
    "aws:cloudwatch/logGroup:LogGroup": ("name", "retentionInDays"),
    "aws:dynamodb/table:Table": ("name", "hashKey", "billingMode"),
    "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream": ("name", "destination"),
    "aws:glue/catalogDatabase:CatalogDatabase": ("name",),
    "aws:glue/catalogTable:CatalogTable": ("databaseName", "name"),
    "aws:iam/role:Role": ("name", "description"),
    "aws:cloudwatch/metricAlarm:MetricAlarm": ("metricName", "threshold"),
    "aws:s3/bucketNotification:BucketNotification": ("bucket",),
    "gcp:storage/bucket:Bucket": ("name", "location"),
    "gcp:pubsub/topic:Topic": ("name",),
    "gcp:pubsub/subscription:Subscription": ("name", "ackDeadlineSeconds"),
    "gcp:storage/notification:Notification": ("bucket", "objectNamePrefix"),
    "gcp:cloudfunctionsv2/function:Function": ("name", "location"),
    "gcp:bigquery/dataset:Dataset": ("datasetId", "location"),
    "gcp:bigquery/table:Table": ("datasetId", "tableId"),
    "gcp:serviceaccount/account:Account": ("accountId",),
    "gcp:firestore/database:Database": ("name", "locationId"),
}
_DEFAULT_KEYS = ("name", "bucket")


@dataclass
class Plan:
    stack: str
    graph: Graph
    violations: list[Violation]

    @property
    def resources(self) -> list[Res]:
        return self.graph.resources

    def counts(self) -> dict[str, int]:
        """Resources per type (components included), most frequent first."""
        return dict(Counter(r.typ for r in self.resources).most_common())

    def tree(self) -> list[dict[str, Any]]:
        """Top-level resources (components first) with their children, recursively."""
        kids: dict[str, list[Res]] = {}
        for r in self.resources:
            kids.setdefault(r.parent, []).append(r)
        urns = {r.urn for r in self.resources}

        def node(r: Res) -> dict[str, Any]:
            return {"type": r.typ, "name": r.name, "read": r.read,
                    "properties": key_properties(r),
                    "children": [node(c) for c in kids.get(r.urn, [])]}

        top = [r for r in self.resources if r.parent not in urns]
        top.sort(key=lambda r: (not r.typ.startswith("headwater:"), r.typ, r.name))
        return [node(r) for r in top]

    def as_dict(self) -> dict[str, Any]:
        return {"stack": self.stack, "ok": not self.violations,
                "resources": self.tree(), "counts": self.counts(),
                "violations": [v.as_dict() for v in self.violations],
                "outputs": _plain(self.graph.outputs)}


def key_properties(r: Res) -> dict[str, Any]:
    keys = KEY_PROPERTIES.get(r.typ, _DEFAULT_KEYS)
    return {k: _plain(r.inputs[k]) for k in keys if r.inputs.get(k) is not None}


def _plain(value: Any) -> Any:
    """JSON-ready: numbers that are whole as ints, archives and assets by path."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    path = getattr(value, "path", None)
    return f"<{type(value).__name__} {path}>" if path else repr(value)


def check_graph(resources: list[Res]) -> list[Violation]:
    """Schema, names and policy rules on recorded resources."""
    from headwater.policies import evaluate

    return schema_violations(resources) + name_violations(resources) + evaluate(resources)


def plan_stack(stack: str, project_dir: Path) -> Plan:
    """Plan stack ``stack`` of the project in ``project_dir``; raises :class:`ProgramError`
    with the program's message when it refuses the stack."""
    with tempfile.TemporaryDirectory(prefix="headwater-plan-") as tmp:
        artifact = Path(tmp) / "standin.zip"
        with zipfile.ZipFile(artifact, "w") as zf:  # what `headwater package` would build
            zf.writestr("README", "stand-in artifact of `headwater plan`: nothing packaged\n")
        graph = plan_program(stack, project_dir, artifact=artifact)
    return Plan(stack, graph, check_graph(graph.resources))
