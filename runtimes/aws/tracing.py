"""X-Ray: one subsegment per object, with the object's key as an annotation.

With active tracing (the component's default) Lambda starts a segment for each
invocation and passes its context in ``_X_AMZN_TRACE_ID``; this module sends a subsegment
document per object to the X-Ray daemon Lambda runs beside the function
(``AWS_XRAY_DAEMON_ADDRESS``, UDP), in the documented segment-document format, so traces
can be searched by ``annotation.object_key``. No SDK, no extra permission beyond the
role's ``xray:PutTraceSegments``; off when ``HEADWATER_TRACING=0``, when the invocation is
not sampled, or outside Lambda. Sending never fails the invocation.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from collections.abc import Mapping
from typing import Any

import orjson

__all__ = ["object_subsegment", "send_subsegment"]

HEADER = b'{"format": "json", "version": 1}\n'
_ANNOTATION_VALUE_MAX = 1000


def _context(env: Mapping[str, str]) -> dict[str, str] | None:
    if env.get("HEADWATER_TRACING", "1") == "0":
        return None
    parts = dict(p.split("=", 1) for p in env.get("_X_AMZN_TRACE_ID", "").split(";") if "=" in p)
    if parts.get("Sampled") != "1" or not parts.get("Root") or not parts.get("Parent"):
        return None
    return parts


def _daemon(env: Mapping[str, str]) -> tuple[str, int] | None:
    """``AWS_XRAY_DAEMON_ADDRESS``: ``host:port`` or ``udp:host:port tcp:host:port``."""
    raw = env.get("AWS_XRAY_DAEMON_ADDRESS", "")
    m = re.search(r"(?:udp:)?([^\s:]+):(\d+)", raw)
    return (m.group(1), int(m.group(2))) if m else None


def object_subsegment(trace: Mapping[str, str], *, pipeline: str, bucket: str, key: str,
                      start: float, end: float, error: BaseException | None = None
                      ) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "headwater object", "id": secrets.token_hex(8), "trace_id": trace["Root"],
        "parent_id": trace["Parent"], "type": "subsegment", "start_time": start,
        "end_time": end,
        "annotations": {"pipeline": pipeline, "bucket": bucket,
                        "object_key": key[:_ANNOTATION_VALUE_MAX]},
    }
    if error is not None:
        doc["fault"] = True
        doc["cause"] = {"exceptions": [{"id": secrets.token_hex(8),
                                        "type": type(error).__name__,
                                        "message": str(error)[:_ANNOTATION_VALUE_MAX]}]}
    return doc


def send_subsegment(*, pipeline: str, bucket: str, key: str, start: float, end: float,
                    error: BaseException | None = None,
                    environ: Mapping[str, str] | None = None) -> bool:
    """Send one object's subsegment; False when tracing is off or sending failed."""
    env = os.environ if environ is None else environ
    trace, daemon = _context(env), _daemon(env)
    if trace is None or daemon is None:
        return False
    doc = object_subsegment(trace, pipeline=pipeline, bucket=bucket, key=key, start=start,
                            end=end, error=error)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(HEADER + orjson.dumps(doc), daemon)
    except OSError:
        return False
    return True
