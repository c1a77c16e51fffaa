"""Records as JSON bytes: the one encoder of sinks and dead-letters."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import orjson

__all__ = ["as_text", "dumps"]


def dumps(record: Any) -> bytes:
    """Records as JSON bytes; anything orjson cannot encode natively becomes a string.

    Integers beyond 64 bits (the decoders keep them exact) are written as exact JSON
    numbers by the standard library, which orjson refuses to do."""
    try:
        return orjson.dumps(record, default=str)
    except TypeError as exc:
        if "64-bit" not in str(exc):
            raise
        import json

        return json.dumps(record, default=str, ensure_ascii=False, separators=(",", ":"),
                          allow_nan=False).encode()


def as_text(v: Any) -> str | None:
    """A value as the text a warehouse casts from: ``true``/``false``, the shortest exact
    float, ISO 8601 dates and times, JSON for containers; None stays None. The local
    DuckDB sink and the Spark backfill stage values of mixed types through it alike."""
    if v is None or type(v) is str:
        return v
    if type(v) is bool:
        return "true" if v else "false"
    if type(v) is float:
        return repr(v)
    if isinstance(v, (int, decimal.Decimal)):
        return str(v)
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, (dict, list, tuple)):
        return orjson.dumps(v, default=str).decode()
    return str(v)
