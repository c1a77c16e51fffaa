"""Azure components: :class:`Pipeline` (``headwater:azure:Pipeline``) and :func:`deploy_stack`.

Files: the pipeline component is in ``pipeline.py``, storage accounts, containers, tables
and the Data Explorer sink in ``storage.py``, role assignments in ``policy.py``, Azure's
plan-time rules in ``checks.py``, Pulumi mocks that answer like ARM in ``mocks.py``.
"""

from __future__ import annotations

import pulumi

from headwater.spec import StackConfig

from ..artifacts import ArtifactFor, artifact_path, packaged
from ..common import PlanError
from .checks import CHILDREN, check_pipeline, check_stack
from .mocks import AzureMocks as Mocks
from .observe import Observability
from .pipeline import DEFAULT_LOCATION, Pipeline, PipelineArgs

__all__ = ["CHILDREN", "Mocks", "Pipeline", "PipelineArgs", "PlanError", "check_pipeline",
           "check_stack", "deploy_stack"]


def deploy_stack(stack: StackConfig, *, artifact_for: ArtifactFor | None = None,
                 opts: pulumi.ResourceOptions | None = None,
                 export: bool = True) -> list[pulumi.ComponentResource]:
    """One :class:`Pipeline` per pipeline of ``stack``, and the stack outputs.

    ``artifact_for(spec)`` gives each Function App's zip; by default the packaging API
    builds it under ``dist/<stack>/``. ``opts`` go to every component, hence every child.
    """
    check_stack(stack)  # every spec refused or accepted before anything is created
    artifact_for = artifact_for or packaged(stack)
    pipelines = [
        Pipeline(spec.name, PipelineArgs(
            spec=spec, artifact=artifact_path(artifact_for(spec)), python=stack.python,
            location=stack.region or DEFAULT_LOCATION, tracing=stack.tracing), opts=opts)
        for spec in stack.pipelines]
    observability = Observability("headwater-observe", stack, pipelines,
                                  stack.region or DEFAULT_LOCATION, opts=opts)
    if export:
        by = {p.spec.name: p for p in pipelines}
        pulumi.export("storage_accounts", {n: p.account.name for n, p in by.items()})
        pulumi.export("eventhub_namespaces", {n: p.namespace.name for n, p in by.items()})
        pulumi.export("notifications_hubs", {n: p.notifications_hub.name for n, p in by.items()})
        pulumi.export("processed_hubs", {n: p.processed_hub.name for n, p in by.items()})
        pulumi.export("function_apps", {n: p.function.name for n, p in by.items()})
        pulumi.export("function_settings", {n: p.function_settings for n, p in by.items()})
        pulumi.export("databases", {n: p.warehouse.database.name.apply(
            lambda d: d.split("/")[-1]) for n, p in by.items()})
        pulumi.export("kql_queries", {n: p.kql_query for n, p in by.items()})
        # `headwater status` queries each pipeline's Application Insights by its app id
        pulumi.export("insights_app_ids", {n: p.insights.app_id for n, p in by.items()})
        pulumi.export("workbook", observability.workbook.id)
    return [*pipelines, observability]
