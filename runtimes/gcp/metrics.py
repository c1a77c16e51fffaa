"""Per-request counters as one structured log line, which Cloud Logging stores as
``jsonPayload`` (severity INFO, message ``headwater request``): log-based metrics and
queries read the counters from it with no API call and no extra permission."""

from __future__ import annotations

from collections.abc import Mapping

from ..core.log import log

__all__ = ["MESSAGE", "emit"]

MESSAGE = "headwater request"


def emit(pipeline: str, values: Mapping[str, float], **fields: object) -> None:
    log("INFO", MESSAGE, pipeline=pipeline, counters=dict(values), **fields)
