"""Per-request metrics as one structured log line, which Cloud Logging stores as
``jsonPayload`` (severity INFO, message ``headwater request``): the shared vocabulary of
:mod:`runtimes.core.metrics` under ``metrics``, and ``project``, ``stack``, ``pipeline``
beside it. The component's log-based metrics (``components/gcp/observe.py``) read them,
with no API call and no extra permission."""

from __future__ import annotations

from collections.abc import Mapping

from ..core.log import log
from ..core.metrics import dimensions

__all__ = ["MESSAGE", "emit"]

MESSAGE = "headwater request"


def emit(pipeline: str, values: Mapping[str, float], **fields: object) -> None:
    log("INFO", MESSAGE, **dimensions(pipeline), metrics=dict(values), **fields)
