"""Dead-letter entries to GCS: one NDJSON object per source object and run.

``gs://<bucket>/<prefix><pipeline>/dt=YYYY-MM-DD/<flat key>-<time>-<hash>.ndjson``. The
upload only creates (``if_generation_match=0``): the function holds object *creator*, never
overwrite. A failed upload raises, so the engine fails the object and Pub/Sub redelivers:
dead-letters are never dropped.
"""

from __future__ import annotations

from typing import Any

from ..core.deadletter import encode, object_name
from .store import GcsStore

__all__ = ["GcsDeadLetter"]


class GcsDeadLetter:
    def __init__(self, client: Any, bucket: str, prefix: str = "deadletter/") -> None:
        if not bucket:
            raise ValueError("the dead-letter bucket is not set (HEADWATER_DEADLETTER_BUCKET)")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"

    def write(self, pipeline: str, bucket: str, key: str, entries: list[dict[str, Any]]) -> None:
        blob = self.client.bucket(self.bucket).blob(self.prefix + object_name(pipeline, key))
        blob.metadata = {"pipeline": pipeline, "source-bucket": bucket,
                         "entries": str(len(entries))}
        blob.upload_from_string(encode(entries), content_type="application/x-ndjson",
                                if_generation_match=0)

    def store(self) -> GcsStore:
        """The dead-letter bucket as replay's object store."""
        return GcsStore(self.client, self.bucket)
