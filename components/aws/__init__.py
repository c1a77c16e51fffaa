"""AWS components: :class:`Pipeline` (``headwater:aws:Pipeline``) and :func:`deploy_stack`.

Files: the pipeline component is in ``pipeline.py``, buckets and the Firehose/Glue sink in
``storage.py``, IAM documents in ``policy.py``, AWS's plan-time rules in ``checks.py``,
Pulumi mocks that answer like AWS in ``mocks.py``.
"""

from __future__ import annotations

from collections import defaultdict

import pulumi
import pulumi_aws as aws

from headwater.spec import StackConfig

from ..artifacts import ArtifactFor, artifact_path, packaged
from ..common import PlanError
from .checks import CHILDREN, check_pipeline, check_stack
from .code import ArtifactStore
from .mocks import AwsMocks as Mocks
from .observe import AlertTarget, Dashboard
from .pipeline import Pipeline, PipelineArgs

__all__ = ["CHILDREN", "ArtifactStore", "BucketTrigger", "Mocks", "Pipeline", "PipelineArgs",
           "PlanError", "check_pipeline", "check_stack", "deploy_stack"]


class BucketTrigger(pulumi.ComponentResource):
    """The one S3 notification of an existing bucket read by several pipelines.

    S3 keeps one notification configuration per bucket; two ``BucketNotification``
    resources on a bucket overwrite each other on every update, so pipelines reading an
    existing bucket always share this one (even while only one pipeline uses it, so that
    adding a second never moves the configuration and briefly deletes it). It replaces any
    notification configuration the bucket had before.
    """

    def __init__(self, name: str, bucket: str, pipelines: list[Pipeline],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("headwater:aws:BucketTrigger", name, None, opts)
        self.notification = aws.s3.BucketNotification(
            f"{name}-notification", bucket=bucket,
            queues=[p.notification_queue for p in pipelines],
            opts=pulumi.ResourceOptions(parent=self,
                                        depends_on=[p.queue_policy for p in pipelines]))
        self.register_outputs({"bucket": bucket})


def deploy_stack(stack: StackConfig, *, artifact_for: ArtifactFor | None = None,
                 opts: pulumi.ResourceOptions | None = None,
                 export: bool = True) -> list[pulumi.ComponentResource]:
    """One :class:`Pipeline` per pipeline of ``stack``, plus a :class:`BucketTrigger` per
    existing source bucket, and the stack outputs.

    ``artifact_for(spec)`` gives each function's zip; by default the packaging API builds
    it under ``dist/<stack>/``. ``opts`` (providers, protect, transforms ...) go to
    every component, hence to every child.
    """
    check_stack(stack)  # every spec refused or accepted before anything is created
    artifact_for = artifact_for or packaged(stack)
    alerts = AlertTarget("headwater-alarms", stack, opts=opts)
    # every function's code (and the shared layer) comes from this bucket: see code.py
    store = ArtifactStore("artifacts", stack.kms_key, opts=opts)
    pipelines: list[Pipeline] = []
    shared: dict[str, list[Pipeline]] = defaultdict(list)
    for spec in stack.pipelines:
        artifact = artifact_for(spec)
        layer = getattr(artifact, "layer", None)
        layers = [store.shared_layer(layer, python=stack.python, arch=stack.arch,
                                     dists=getattr(artifact, "in_layer", None)).arn
                  ] if layer is not None else []
        pipeline = Pipeline(spec.name, PipelineArgs(
            spec=spec, artifact=artifact_path(artifact), python=stack.python,
            arch=stack.arch, kms_key=stack.kms_key,
            alarm_actions=alerts.actions, alerts=stack.alerts, tracing=stack.tracing,
            notify=spec.source.bucket is None, artifacts=store, layers=layers), opts=opts)
        pipelines.append(pipeline)
        if spec.source.bucket and spec.source.notify_by == "s3":
            shared[spec.source.bucket].append(pipeline)
    out: list[pulumi.ComponentResource] = list(pipelines)
    dashboard = Dashboard("headwater-dashboard", pipelines, opts=opts)
    out.append(dashboard)
    for bucket, users in shared.items():
        out.append(BucketTrigger(f"trigger-{bucket}", bucket, users, opts=opts))
    if export:
        pulumi.export("raw_buckets", {p.spec.name: p.bucket.bucket for p in pipelines})
        pulumi.export("curated_buckets", {p.spec.name: p.curated_bucket.bucket for p in pipelines})
        pulumi.export("queue_urls", {p.spec.name: p.queue.url for p in pipelines})
        pulumi.export("dlq_urls", {p.spec.name: p.dlq.url for p in pipelines})
        pulumi.export("function_names", {p.spec.name: p.function.name for p in pipelines})
        pulumi.export("function_settings", {p.spec.name: p.function_settings for p in pipelines})
        pulumi.export("artifacts_bucket", store.bucket.bucket)
        pulumi.export("athena_queries", {p.spec.name: p.athena_query for p in pipelines})
        pulumi.export("dashboard", dashboard.dashboard.dashboard_name)
    return out
