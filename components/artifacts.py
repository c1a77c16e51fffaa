"""The glue between a component and the packaging API: each function's artifact, built
into ``dist/<stack>/`` (the folder ``headwater package --stack <stack>`` writes, so a
prebuilt artifact is reused), or given by the caller."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi

from headwater.spec import PipelineSpec, StackConfig

from .common import PlanError

__all__ = ["DIST", "ArtifactFor", "artifact_path", "packaged"]

ArtifactFor = Callable[[PipelineSpec], "str | os.PathLike[str] | pulumi.Archive | Any"]
DIST = Path("dist")
STANDIN_ENV = "HEADWATER_ARTIFACT_STANDIN"  # same name as headwater.testing.program


def packaged(stack: StackConfig) -> ArtifactFor:
    """``spec -> Artifact`` with the packaging API; a packaging failure is a
    :class:`PlanError` naming the pipeline. With ``HEADWATER_ARTIFACT_STANDIN`` set (a
    plan that does not package: ``headwater plan``, tests), every function gets that zip."""
    standin = os.environ.get(STANDIN_ENV)
    if standin:
        return lambda spec: standin

    def build(spec: PipelineSpec) -> Any:
        from headwater.packaging import PackagingError, build_pipeline_artifact

        try:
            return build_pipeline_artifact(stack, spec, DIST / pulumi.get_stack())
        except PackagingError as exc:
            raise PlanError(f"pipeline {spec.name!r}: cannot package its function: {exc}") from exc

    return build


def artifact_path(artifact: Any) -> Any:
    """A packaging ``Artifact`` (has ``.path``), a path, or a :class:`pulumi.Archive`."""
    return getattr(artifact, "path", artifact)
