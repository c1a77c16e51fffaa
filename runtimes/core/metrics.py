"""The one metric vocabulary of every runtime: the counters of an invocation, named the
same on every cloud (the cloud's emitter decides the wire format: EMF, log fields ...)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from .engine import Counters

__all__ = ["COUNTERS", "invocation_values"]

# metric name -> Counters field
COUNTERS = {"Received": "received", "Written": "written", "Dropped": "dropped",
            "DeadLettered": "dead_lettered", "Retries": "retries",
            "SkippedObjects": "skipped_objects", "UndecodableObjects": "undecodable_objects"}


def invocation_values(totals: Counters, stats: Mapping[str, float], started: float,
                      transform_metrics: Any = None) -> dict[str, float]:
    """The counters of one invocation: the engine's totals, the adapter's own ``stats``
    (objects, duplicates ...), ``Seconds`` since ``started`` (``time.perf_counter``), then
    what transforms counted through ``ctx.metrics`` (never overriding the above)."""
    values: dict[str, float] = {name: getattr(totals, field) for name, field in COUNTERS.items()}
    values.update(stats)
    values["Seconds"] = round(time.perf_counter() - started, 6)
    extra = getattr(transform_metrics, "values", {}) or {}
    values.update({k: v for k, v in extra.items() if k not in values})
    return values
