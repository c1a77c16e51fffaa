"""Per-invocation metrics as one structured log line (message ``headwater metrics``): the
shared vocabulary of :mod:`runtimes.core.metrics` under ``metrics``, and ``project``,
``stack``, ``pipeline`` beside it. The Functions host sends the line to Application
Insights as a trace; the stack's workbook and alert rules read it with KQL
(``parse_json(message)``), with no SDK and no extra permission."""

from __future__ import annotations

from collections.abc import Mapping

from ..core.log import log
from ..core.metrics import dimensions

__all__ = ["MESSAGE", "emit"]

MESSAGE = "headwater metrics"


def emit(pipeline: str, values: Mapping[str, float]) -> None:
    log("INFO", MESSAGE, **dimensions(pipeline), metrics=dict(values))
