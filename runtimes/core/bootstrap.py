"""The one engine bootstrap: a baked manifest plus a cloud's ports -> a ready :class:`Engine`.

Every runtime (each cloud's function adapter, the local runner, a backfill task) builds its
engine here, so the pipeline settings a runtime honours (format, compression, CSV
delimiter, sink batch, attempts, dead-letter prefix) are read in one place, from the
manifest, with no defaults re-typed per cloud: the manifest is the validated spec dumped
with every default filled in, and a manifest missing a setting is refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from transforms.contract import Context

from .engine import DeadLetterSink, Engine, RetryPolicy, Sink
from .manifest import ManifestError, load_steps

__all__ = ["PipelineSettings", "engine_from_manifest"]


def _get(doc: Mapping[str, Any], path: str) -> Any:
    node: Any = doc
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise ManifestError(f"manifest has no pipeline.{path}: rebuild the artifact with "
                                "this version of `headwater package`")
        node = node[part]
    return node


@dataclass(frozen=True)
class PipelineSettings:
    """What a runtime needs of a pipeline's spec, read from its manifest."""

    name: str
    prefix: str
    suffix: str
    format: str
    compression: str
    csv_delimiter: str
    table: str
    columns: dict[str, str]
    sink_batch: int
    max_attempts: int
    deadletter_prefix: str
    deadletter_bucket: str | None
    lookup_keys: dict[str, str | None]

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> PipelineSettings:
        spec = manifest.get("pipeline")
        if not isinstance(spec, Mapping):
            raise ManifestError("manifest has no pipeline section")
        keys = manifest.get("lookup_keys")
        if keys is None:  # manifests from before lookup_keys was baked: derive it alike
            keys = {}
            for step in spec.get("transforms") or []:
                w = step.get("with") or {}
                if isinstance(w.get("table"), str) and keys.get(w["table"]) is None:
                    keys[w["table"]] = w.get("key") if isinstance(w.get("key"), str) else None
        return cls(
            name=_get(spec, "name"),
            prefix=_get(spec, "source.prefix"),
            suffix=_get(spec, "source.suffix"),
            format=_get(spec, "source.format"),
            compression=_get(spec, "source.compression"),
            csv_delimiter=_get(spec, "source.csv_delimiter"),
            table=_get(spec, "sink.table"),
            columns=dict(_get(spec, "sink.columns")),
            sink_batch=int(_get(spec, "limits.sink_batch")),
            max_attempts=int(_get(spec, "limits.max_attempts")),
            deadletter_prefix=_get(spec, "deadletter.prefix"),
            deadletter_bucket=_get(spec, "deadletter.bucket"),
            lookup_keys=dict(keys),
        )

    def wants(self, key: str) -> bool:
        """True when ``key`` is under the pipeline's source prefix and suffix (the
        recursion guard every adapter applies before reading an object)."""
        return key.startswith(self.prefix) and key.endswith(self.suffix)


def engine_from_manifest(
    manifest: Mapping[str, Any],
    *,
    sink: Sink | Callable[[PipelineSettings], Sink],
    deadletter: DeadLetterSink,
    ctx: Context | None = None,
    sleep: Callable[[float], None] = time.sleep,
    columnar: bool = False,
) -> Engine:
    """Import the manifest's chain and wire it to the runtime's ports. Every record
    written gets its ``_headwater_id``.

    ``sink`` is a sink, or a factory given the :class:`PipelineSettings` (for the batch
    size and table). ``ctx`` carries the runtime's lookup/secret ports. ``columnar``
    runs the chain's vectorised steps on Arrow tables (needs pyarrow: the local runner).
    """
    settings = PipelineSettings.from_manifest(manifest)
    steps = load_steps(dict(manifest))
    the_sink = sink(settings) if callable(sink) and not hasattr(sink, "write") else sink
    return Engine(
        settings.name,
        steps,
        the_sink,  # type: ignore[arg-type]
        deadletter,
        ctx or Context(pipeline=settings.name),
        retry=RetryPolicy(max_attempts=settings.max_attempts, sleep=sleep),
        fmt=settings.format,
        compression=settings.compression,
        csv_delimiter=settings.csv_delimiter,
        stamp_ids=True,
        columnar=columnar,
    )
