"""Metrics as CloudWatch Embedded Metric Format: one JSON line per invocation on stdout.

CloudWatch Logs turns the line into metrics (namespace ``headwater``, dimension
``pipeline``) with no API call and no extra permission.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import IO

import orjson

__all__ = ["NAMESPACE", "emf", "emit"]

NAMESPACE = "headwater"
_UNITS = {"Seconds": "Seconds"}
MAX_METRICS = 100  # EMF allows at most 100 metrics per directive


def emf(pipeline: str, values: Mapping[str, float], now: float | None = None) -> dict:
    """The EMF document for ``values`` (metric name -> value)."""
    names = list(values)[:MAX_METRICS]
    doc: dict = {
        "_aws": {
            "Timestamp": int((time.time() if now is None else now) * 1000),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["pipeline"]],
                "Metrics": [{"Name": n, "Unit": _UNITS.get(n, "Count")} for n in names],
            }],
        },
        "pipeline": pipeline,
    }
    for n in names:
        doc[n] = values[n]
    return doc


def emit(pipeline: str, values: Mapping[str, float], out: IO[str] | None = None) -> None:
    stream = out or sys.stdout
    stream.write(orjson.dumps(emf(pipeline, values)).decode() + "\n")
    stream.flush()
