"""What every cloud's observability is made of, written once: the alarm rules, the
dashboard's widgets per pipeline, and names. Each cloud's ``observe.py`` builds these from
its own services' metrics and the runtime's shared vocabulary
(:data:`runtimes.core.metrics.METRICS`); a test holds each to this list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from runtimes.core.metrics import DIMENSIONS, METRICS

__all__ = ["ALARMS", "DIMENSIONS", "METRICS", "WIDGETS", "AlarmRule", "dashboard_name"]


@dataclass(frozen=True)
class AlarmRule:
    key: str
    what: str
    why: str  # what the person alerted should do


# the same rules on every cloud; thresholds come from the spec (headwater:alerts)
ALARMS = (
    AlarmRule("errors", "the function failed (errors > 0 in 5 minutes)",
              "the notifications will be retried, then dead-lettered: read the function's log"),
    AlarmRule("dlq", "the notification dead-letter queue/topic is not empty",
              "notifications gave up after every attempt: inspect them, fix, and replay"),
    AlarmRule("oldest-message", "the oldest waiting notification is older than "
              "alerts.oldest_message_minutes", "the pipeline is falling behind"),
    AlarmRule("deadletter-rate", "dead-lettered / records in above alerts.deadletter_rate "
              "over 5 minutes", "records are failing: read the dead-letter entries' errors"),
)

# the widgets of one pipeline's row, in order, on every cloud's dashboard
WIDGETS = (
    "records in / written / dead-lettered",
    "success rate",
    "queue depth and oldest message age",
    "dead-letter queue depth",
    "function errors, throttles and duration",
    "sink delivery",
    "sink latency and object age",
)


def dashboard_name(project: str, stack: str, limit: int = 255) -> str:
    """``headwater-<project>-<stack>``: letters, digits, ``-`` and ``_`` only."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", f"headwater-{project}-{stack}")[:limit]
