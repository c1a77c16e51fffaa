"""GCP components: :class:`Pipeline` (``headwater:gcp:Pipeline``) and :func:`deploy_stack`.

Files: the pipeline component is in ``pipeline.py``, buckets and the BigQuery sink in
``storage.py``, the IAM rule in ``policy.py``, GCP's plan-time rules in ``checks.py``,
Pulumi mocks that answer like GCP in ``mocks.py``.

A GCS bucket takes up to 100 notification configurations, each with its own prefix, so
pipelines sharing an existing bucket each keep their own (unlike S3's one per bucket).
"""

from __future__ import annotations

import pulumi

from headwater.spec import StackConfig

from ..artifacts import ArtifactFor, artifact_path, packaged
from ..common import PlanError
from .checks import CHILDREN, check_pipeline, check_stack
from .mocks import GcpMocks as Mocks
from .observe import Observability
from .pipeline import Pipeline, PipelineArgs

__all__ = ["CHILDREN", "Mocks", "Pipeline", "PipelineArgs", "PlanError", "check_pipeline",
           "check_stack", "deploy_stack"]


def deploy_stack(stack: StackConfig, *, artifact_for: ArtifactFor | None = None,
                 opts: pulumi.ResourceOptions | None = None,
                 export: bool = True) -> list[pulumi.ComponentResource]:
    """One :class:`Pipeline` per pipeline of ``stack``, and the stack outputs.

    ``artifact_for(spec)`` gives each function's source zip; by default the packaging API
    builds it under ``dist/<stack>/``. ``opts`` go to every component, hence every child.
    """
    check_stack(stack)  # every spec refused or accepted before anything is created
    assert stack.region  # check_stack refuses a GCP stack without one
    artifact_for = artifact_for or packaged(stack)
    pipelines = [Pipeline(spec.name, PipelineArgs(
        spec=spec, artifact=artifact_path(artifact_for(spec)), region=stack.region,
        python=stack.python, tracing=stack.tracing), opts=opts) for spec in stack.pipelines]
    observability = Observability("headwater-observe", stack, pipelines, opts=opts)
    if export:
        pulumi.export("raw_buckets", {p.spec.name: p.bucket.name for p in pipelines})
        pulumi.export("topics", {p.spec.name: p.topic.id for p in pipelines})
        pulumi.export("dead_letter_topics", {p.spec.name: p.dead_letter_topic.id
                                             for p in pipelines})
        pulumi.export("functions", {p.spec.name: p.function.name for p in pipelines})
        # `headwater status` reads these subscriptions' depth in this project
        pulumi.export("subscriptions", {p.spec.name: p.subscription.name for p in pipelines})
        pulumi.export("dead_letter_subscriptions", {p.spec.name: p.dead_letter_subscription.name
                                                    for p in pipelines})
        if pipelines:
            pulumi.export("project_id", pipelines[0].project_id)
        pulumi.export("function_settings", {p.spec.name: p.function_settings for p in pipelines})
        pulumi.export("tables", {p.spec.name: p.table.id for p in pipelines})
        pulumi.export("deadletter_buckets", {p.spec.name: p.deadletter_bucket.name
                                             for p in pipelines})
        pulumi.export("bigquery_queries", {p.spec.name: p.bigquery_query for p in pipelines})
        pulumi.export("dashboard", observability.dashboard.id)
    return [*pipelines, observability]
