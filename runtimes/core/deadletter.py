"""Dead-letter writers: NDJSON, one entry per line, one object per source object and run.

Entry fields: ``pipeline``, ``source`` (bucket, key), ``line``, ``offset`` (decode
errors), ``step`` (``"<index>:<name>"``, ``decode`` or ``sink``), ``error_type``,
``message``, ``at``, and ``record`` (the record as the failing step received it) and/or
``raw`` (the input line; ``raw_b64`` too when it was not valid UTF-8).
"""

from __future__ import annotations

import hashlib
import re
import time
from typing import Any

from .codec import dumps

__all__ = ["encode", "object_name"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def encode(entries: list[dict[str, Any]]) -> bytes:
    return b"".join(dumps(e) + b"\n" for e in entries)


def object_name(pipeline: str, key: str, now: float | None = None) -> str:
    """``<pipeline>/dt=YYYY-MM-DD/<flattened key>-<time>-<hash>.ndjson``: unique per run,
    readable, and never under the pipeline's source prefix."""
    now = time.time() if now is None else now
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    day = time.strftime("%Y-%m-%d", time.gmtime(now))
    flat = _UNSAFE.sub("_", key).strip("_")[-120:] or "object"
    tag = hashlib.sha256(f"{key}\0{now}".encode()).hexdigest()[:8]
    return f"{pipeline}/dt={day}/{flat}-{stamp}-{tag}.ndjson"
