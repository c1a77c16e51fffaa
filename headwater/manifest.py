"""Build a pipeline's baked manifest (plan / package time): the validated spec as plain
JSON plus, per step, the ``module:attr`` the function imports. The format and its loader
are in :mod:`runtimes.core.manifest`.
"""

from __future__ import annotations

from typing import Any

from runtimes.core.manifest import VERSION

__all__ = ["build_manifest"]


def build_manifest(spec: Any, registry: Any | None = None) -> dict[str, Any]:
    """Resolve every ``use:`` of ``spec`` (a PipelineSpec) and check its settings.

    Raises the registry's errors (unknown name, conflict, import failure, bad settings),
    each naming the pipeline and step.
    """
    if registry is None:
        from transforms.registry import default_registry

        registry = default_registry()
    steps = []
    for index, step in enumerate(spec.transforms):
        registry.build(step.use, step.with_, pipeline=spec.name, step=index)
        plugin = registry.plugin(step.use)
        steps.append({
            "index": index,
            "use": step.use,
            "ref": plugin.ref,
            "distribution": plugin.distribution,
            "version": plugin.version,
            "settings": step.with_,
        })
    return {
        "version": VERSION,
        "lookup_keys": spec.lookup_keys(),
        "pipeline": spec.model_dump(mode="json", by_alias=True),
        "steps": steps,
    }
