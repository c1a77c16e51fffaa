"""Records as JSON bytes: the one encoder of sinks and dead-letters."""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["dumps"]


def dumps(record: Any) -> bytes:
    """Records as JSON bytes; anything orjson cannot encode natively becomes a string."""
    return orjson.dumps(record, default=str)
