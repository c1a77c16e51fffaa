"""Dead-letters to the pipeline's Blob container, and notifications parked for replay.

- Record entries: ``<prefix><pipeline>/dt=YYYY-MM-DD/<flat name>-<time>-<hash>.ndjson``, one
  NDJSON blob per source object and run (see :mod:`runtimes.core.deadletter`).
- Notifications the function could not handle as a whole (a blob it cannot read, a body
  that is no Event Grid event): ``<prefix>notifications/<pipeline>/dt=.../...json`` holding
  the exact event body, the blob it names and the error. The Event Hub trigger moves its
  checkpoint on after the last retry, so this blob is the only copy: replay it by sending
  ``body`` to the notifications hub again.

A failed upload raises: the invocation fails and nothing is acknowledged silently.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from ..core.deadletter import encode, object_name
from .store import BlobStore

__all__ = ["BlobDeadLetter"]


class BlobDeadLetter:
    def __init__(self, container: Any, prefix: str = "deadletter/") -> None:
        self.container = container  # a ContainerClient
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"

    def write(self, pipeline: str, bucket: str, key: str, entries: list[dict[str, Any]]) -> None:
        from azure.storage.blob import ContentSettings

        self.container.upload_blob(
            self.prefix + object_name(pipeline, key), encode(entries), overwrite=False,
            content_settings=ContentSettings(content_type="application/x-ndjson"),
            metadata={"pipeline": pipeline, "source_container": bucket,
                      "entries": str(len(entries))})

    def notification(self, pipeline: str, body: bytes, reason: str, exc: BaseException,
                     blob: dict[str, Any] | None = None) -> str:
        """Park one notification; returns the blob name written."""
        from azure.storage.blob import ContentSettings

        key = (blob or {}).get("name") or "notification"
        name = self.prefix + "notifications/" + object_name(pipeline, key).removesuffix(
            ".ndjson") + ".json"
        doc = {"pipeline": pipeline, "reason": reason, "error_type": type(exc).__name__,
               "error": str(exc), "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "blob": blob, "body": body.decode("utf-8", "backslashreplace")}
        self.container.upload_blob(
            name, orjson.dumps(doc, default=str), overwrite=False,
            content_settings=ContentSettings(content_type="application/json"),
            metadata={"pipeline": pipeline, "kind": "notification"})
        return name

    def store(self) -> BlobStore:
        """The dead-letter container as replay's object store."""
        return BlobStore(self.container)
