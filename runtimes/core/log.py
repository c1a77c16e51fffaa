"""Structured logs: one JSON object per line on stdout, which CloudWatch Logs, Cloud
Logging and Application Insights all parse. A failure carries its traceback."""

from __future__ import annotations

import sys
import traceback
from typing import Any

import orjson

__all__ = ["log"]

# Cloud Logging reads ``severity``; CloudWatch and App Insights index any field.
_SEVERITY = {"WARN": "WARNING"}


def log(level: str, message: str, *, exc: BaseException | None = None, **fields: Any) -> None:
    """Write ``{"level", "severity", "message", **fields}``; with ``exc``, also
    ``error_type``, ``error`` and ``traceback`` (the formatted stack, so the line that failed
    is in the log and not only the exception's text)."""
    line: dict[str, Any] = {"level": level, "severity": _SEVERITY.get(level, level),
                            "message": message, **fields}
    if exc is not None:
        line["error_type"] = type(exc).__name__
        line["error"] = str(exc)
        line["traceback"] = "".join(traceback.format_exception(exc))
    sys.stdout.write(orjson.dumps(line, default=str).decode() + "\n")
