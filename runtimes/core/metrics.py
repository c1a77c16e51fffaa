"""The one metric vocabulary of every runtime: the counters of an invocation, named the
same on every cloud, with the same dimensions (project, stack, pipeline). The cloud's
emitter decides the wire format (EMF on AWS, log fields on GCP and Azure, a JSON file
locally); dashboards, alarms and ``headwater status`` read these names and nothing else.

:data:`METRICS` is the vocabulary: name -> (unit, meaning). Adapters add a few counters
of their own (``Duplicates``, ``Parked`` ...), emitted beside these but never used by a
dashboard or an alarm.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from .engine import Counters

__all__ = ["ADAPTER_METRICS", "COUNTERS", "DIMENSIONS", "METRICS", "ObjectAge", "dimensions", "invocation_values",
           "object_age"]

# metric name -> Counters field
COUNTERS = {"Received": "received", "Written": "written", "Dropped": "dropped",
            "DeadLettered": "dead_lettered", "Retries": "retries",
            "SkippedObjects": "skipped_objects", "UndecodableObjects": "undecodable_objects",
            "SinkSeconds": "sink_seconds"}

# name -> (unit, meaning): what every runtime emits per invocation
METRICS: dict[str, tuple[str, str]] = {
    "Objects": ("Count", "objects processed"),
    "Received": ("Count", "records in (decoded from the objects)"),
    "Written": ("Count", "records the sink accepted"),
    "Dropped": ("Count", "records a transform dropped on purpose"),
    "DeadLettered": ("Count", "records written to the dead-letter"),
    "Retries": ("Count", "records sent to the sink again after a retryable failure"),
    "SkippedObjects": ("Count", "folder placeholders and empty objects"),
    "UndecodableObjects": ("Count", "objects dead-lettered whole (not decodable)"),
    "SinkSeconds": ("Seconds", "time spent in sink writes (the sink's latency)"),
    "ObjectAgeSeconds": ("Seconds", "the oldest object's age when its processing started "
                                    "(now minus the object's creation time)"),
    "Seconds": ("Seconds", "the invocation's duration"),
}

# what each adapter counts beside the vocabulary (its ``stats``), by the same names
ADAPTER_METRICS: dict[str, tuple[str, ...]] = {
    "aws": ("Duplicates", "Superseded", "FailedMessages"),
    "gcp": (),
    "azure": ("Events", "Duplicates", "Superseded", "Ignored", "Parked"),
}

DIMENSIONS = ("project", "stack", "pipeline")
# set by every component on its function (the Pulumi project and stack)
PROJECT_ENV, STACK_ENV = "HEADWATER_PULUMI_PROJECT", "HEADWATER_STACK"
UNSET = "unset"


def dimensions(pipeline: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``{"project", "stack", "pipeline"}``: two stacks running the same pipeline never
    write into the same metrics."""
    env = os.environ if environ is None else environ
    return {"project": env.get(PROJECT_ENV) or UNSET, "stack": env.get(STACK_ENV) or UNSET,
            "pipeline": pipeline}


def object_age(created: Any, now: float | None = None) -> float | None:
    """Seconds since ``created`` (an RFC 3339 / ISO 8601 time as the clouds' events carry
    it, a datetime, or epoch seconds); None when it is missing or unreadable."""
    if created in (None, ""):
        return None
    if isinstance(created, (int, float)):
        ts = float(created)
    elif isinstance(created, datetime):
        ts = (created if created.tzinfo else created.replace(tzinfo=UTC)).timestamp()
    else:
        text = str(created).strip().replace("Z", "+00:00").replace("z", "+00:00")
        # Python < 3.11 reads at most 6 fractional digits; Event Grid sends 7
        head, dot, rest = text.partition(".")
        if dot:
            digits = len(rest) - len(rest.lstrip("0123456789"))
            rest = rest[:min(digits, 6)] + rest[digits:]
            text = f"{head}.{rest}"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        ts = parsed.timestamp()
    return max(0.0, (time.time() if now is None else now) - ts)


class ObjectAge:
    """The oldest object age of an invocation (``ObjectAgeSeconds``)."""

    def __init__(self) -> None:
        self.oldest: float | None = None

    def saw(self, created: Any, now: float | None = None) -> None:
        age = object_age(created, now)
        if age is not None and (self.oldest is None or age > self.oldest):
            self.oldest = age


def invocation_values(totals: Counters, stats: Mapping[str, float], started: float,
                      transform_metrics: Any = None, *,
                      ages: ObjectAge | Iterable[float] | None = None) -> dict[str, float]:
    """The counters of one invocation: the engine's totals, the adapter's own ``stats``
    (objects, duplicates ...), ``ObjectAgeSeconds`` (the oldest object, when known),
    ``Seconds`` since ``started`` (``time.perf_counter``), then what transforms counted
    through ``ctx.metrics`` (never overriding the above)."""
    values: dict[str, float] = {"Objects": 0}
    values.update({name: getattr(totals, field) for name, field in COUNTERS.items()})
    values["SinkSeconds"] = round(values["SinkSeconds"], 6)
    values.update(stats)
    oldest = ages.oldest if isinstance(ages, ObjectAge) else max(ages or [], default=None)
    if oldest is not None:
        values["ObjectAgeSeconds"] = round(oldest, 3)
    values["Seconds"] = round(time.perf_counter() - started, 6)
    extra = getattr(transform_metrics, "values", {}) or {}
    values.update({k: v for k, v in extra.items() if k not in values})
    return values
