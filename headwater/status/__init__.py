"""``headwater status``: is each pipeline of a stack healthy, over a recent window?

One :class:`PipelineStatus` per pipeline, read by a cloud's reader (``local.py`` from the
ledger and the dead-letter folder, ``aws.py`` from CloudWatch, SQS and CloudWatch Logs,
``gcp.py`` from Cloud Logging and Cloud Monitoring, with the user's credentials), judged by :func:`judge` with the rules every cloud's alarms
use (components/observe.py): function errors, a non-empty dead-letter queue, the oldest
waiting notification older than ``alerts.oldest_message_minutes``, dead-lettered / records
in above ``alerts.deadletter_rate``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from headwater.spec import Alerts

__all__ = ["RUNTIME_METRICS", "PipelineStatus", "StatusError", "judge", "parse_since",
           "project_name"]

# the runtime metrics (runtimes.core.metrics) a status sums -> PipelineStatus field
RUNTIME_METRICS = {"Objects": "objects", "Received": "records_in", "Written": "written",
                   "DeadLettered": "dead_lettered"}


class StatusError(RuntimeError):
    """The status cannot be read (no credentials, no deployment, no run yet): what to do."""


@dataclass
class PipelineStatus:
    pipeline: str
    objects: float | None = None
    records_in: float | None = None
    written: float | None = None
    dead_lettered: float | None = None
    errors: float | None = None  # function errors (clouds) or failed objects
    queue_depth: float | None = None
    dlq_depth: float | None = None
    oldest_age_s: float | None = None
    last_error: str = ""
    last_error_key: str = ""
    notes: list[str] = field(default_factory=list)  # what limited the reading
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems


def judge(status: PipelineStatus, alerts: Alerts) -> PipelineStatus:
    """Fill ``status.problems`` with every rule it breaks (missing readings break none)."""
    p: list[str] = []
    if status.errors:
        p.append(f"{status.errors:g} function error(s)")
    if status.dlq_depth:
        p.append(f"{status.dlq_depth:g} notification(s) in the dead-letter queue")
    limit = alerts.oldest_message_minutes * 60
    if status.oldest_age_s is not None and status.oldest_age_s > limit:
        p.append(f"oldest notification waits {status.oldest_age_s / 60:.0f} min "
                 f"(> {alerts.oldest_message_minutes})")
    if status.records_in and status.dead_lettered is not None:
        rate = status.dead_lettered / status.records_in
        if rate > alerts.deadletter_rate:
            p.append(f"dead-letter rate {rate:.1%} (> {alerts.deadletter_rate:.1%})")
    status.problems = p
    return status


_SINCE = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str) -> int:
    """``30m``, ``1h``, ``2d`` -> seconds; ``ValueError`` naming the accepted forms."""
    m = _SINCE.match(text or "")
    if not m or int(m.group(1)) == 0:
        raise ValueError(f"--since {text!r}: expected a number and a unit, e.g. 30m, 1h, 2d")
    return int(m.group(1)) * _UNIT[m.group(2)]


def project_name(project_dir: Path) -> str:
    """The Pulumi project's name (``Pulumi.yaml``): the ``project`` metric dimension."""
    import yaml

    try:
        doc = yaml.safe_load((project_dir / "Pulumi.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return "headwater"
    return str(doc.get("name") or "headwater") if isinstance(doc, dict) else "headwater"
