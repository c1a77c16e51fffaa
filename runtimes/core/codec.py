"""Records as JSON bytes: the one encoder of sinks and dead-letters."""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["dumps"]


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
