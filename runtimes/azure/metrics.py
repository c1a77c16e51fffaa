"""Per-invocation counters as one structured log line, which Application Insights stores
as a trace with the counters in ``customDimensions`` (query them with KQL; no SDK, no
extra permission)."""

from __future__ import annotations

from collections.abc import Mapping

from ..core.log import log

__all__ = ["emit"]


def emit(pipeline: str, values: Mapping[str, float]) -> None:
    log("INFO", "headwater metrics", pipeline=pipeline, metrics=dict(values))
