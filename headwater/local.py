"""``headwater run``'s plan side: a stack's pipelines as baked manifests for the local
runner (:mod:`runtimes.local`), which never reads the pydantic spec."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from runtimes.core.manifest import VERSION
from runtimes.local.runner import LocalRunner

from .manifest import build_manifest
from .spec import PipelineSpec, StackConfig

__all__ = ["local_manifests", "local_runner"]


def local_manifests(stack: StackConfig, pipelines: Iterable[str] | None = None,
                    registry: Any | None = None) -> list[dict[str, Any]]:
    """One manifest per pipeline (all, or those named: ``KeyError`` names what exists).

    A pipeline whose chain cannot be resolved (a plugin that fails to import, bad
    settings) gets a manifest with its ``error`` and no steps, so a run reports it and
    still runs the others.
    """
    specs: list[PipelineSpec] = (list(stack.pipelines) if pipelines is None
                                 else [stack.pipeline(n) for n in pipelines])
    out = []
    for spec in specs:
        try:
            out.append(build_manifest(spec, registry))
        except Exception as exc:  # reported per pipeline by the runner, never hidden
            out.append({"version": VERSION, "lookup_keys": spec.lookup_keys(),
                        "pipeline": spec.model_dump(mode="json", by_alias=True),
                        "steps": [], "error": f"{type(exc).__name__}: {exc}"})
    return out


def local_runner(stack: StackConfig, root: str | Path, warehouse: str | Path, *,
                 pipelines: Iterable[str] | None = None, registry: Any | None = None,
                 **kwargs: Any) -> LocalRunner:
    """A :class:`LocalRunner` for ``stack``'s pipelines (``kwargs`` go to the runner)."""
    return LocalRunner(local_manifests(stack, pipelines, registry), root, warehouse, **kwargs)
