"""Each blob version is processed once, however often its notification arrives.

Event Grid delivers at least once, and a batch the function's retry policy runs again
repeats every notification in it. After a blob version (container, name, ETag) is fully
processed, a marker blob ``<prefix><pipeline>/_processed/<hash>.json`` records it; a
notification for a version with a marker writes nothing. Within one invocation the same
version is also handled once.

Markers live in the dead-letter container, under the pipeline's dead-letter prefix, which
the function may already write and the plan checks keep apart from the source.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from typing import Any

import orjson

__all__ = ["DoneMarkers"]


class DoneMarkers:
    def __init__(self, container: Any, prefix: str = "deadletter/") -> None:
        self.container = container
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"

    def name(self, pipeline: str, container: str, blob: str, etag: str) -> str:
        digest = hashlib.sha256(f"{container}/{blob}#{etag}".encode()).hexdigest()[:40]
        return f"{self.prefix}{pipeline}/_processed/{digest}.json"

    def done(self, pipeline: str, container: str, blob: str, etag: str) -> bool:
        return bool(self.container.get_blob_client(
            self.name(pipeline, container, blob, etag)).exists())

    def mark(self, pipeline: str, container: str, blob: str, etag: str,
             counts: Mapping[str, float]) -> None:
        doc = {"container": container, "blob": blob, "etag": etag, "counts": dict(counts),
               "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self.container.upload_blob(self.name(pipeline, container, blob, etag),
                                   orjson.dumps(doc), overwrite=True)
