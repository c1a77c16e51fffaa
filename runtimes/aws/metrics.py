"""Metrics as CloudWatch Embedded Metric Format: one JSON line per invocation on stdout.

CloudWatch Logs turns the line into metrics (namespace ``headwater``, dimensions
``project``, ``stack``, ``pipeline``: the shared vocabulary of
:mod:`runtimes.core.metrics`) with no API call and no extra permission.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import IO

import orjson

from ..core.metrics import DIMENSIONS, METRICS, dimensions

__all__ = ["NAMESPACE", "emf", "emit"]

NAMESPACE = "headwater"
MAX_METRICS = 100  # EMF allows at most 100 metrics per directive


def _unit(name: str) -> str:
    return METRICS.get(name, ("Count", ""))[0]


def emf(pipeline: str, values: Mapping[str, float], now: float | None = None,
        dims: Mapping[str, str] | None = None) -> dict:
    """The EMF document for ``values`` (metric name -> value), with the dimensions
    ``project``, ``stack`` and ``pipeline`` (``dims``, else from the environment)."""
    dims = dict(dims) if dims is not None else dimensions(pipeline)
    dims["pipeline"] = pipeline
    names = list(values)[:MAX_METRICS]
    doc: dict = {
        "_aws": {
            "Timestamp": int((time.time() if now is None else now) * 1000),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [list(DIMENSIONS)],
                "Metrics": [{"Name": n, "Unit": _unit(n)} for n in names],
            }],
        },
        **{d: dims[d] for d in DIMENSIONS},
    }
    for n in names:
        doc[n] = values[n]
    return doc


def emit(pipeline: str, values: Mapping[str, float], out: IO[str] | None = None) -> None:
    stream = out or sys.stdout
    stream.write(orjson.dumps(emf(pipeline, values)).decode() + "\n")
    stream.flush()
