"""Dead-letter entries to S3: one NDJSON object per source object and run.

``s3://<bucket>/<prefix><pipeline>/dt=YYYY-MM-DD/<flat key>-<time>-<hash>.ndjson``, encrypted
at rest (SSE-S3, or SSE-KMS with the configured key). A failed ``PutObject`` raises, so
the engine fails the object and SQS redelivers it: dead-letters are never dropped.
"""

from __future__ import annotations

from typing import Any

from ..core.deadletter import encode, object_name
from .store import S3Store, encryption

__all__ = ["S3DeadLetter"]


class S3DeadLetter:
    def __init__(self, client: Any, bucket: str, prefix: str = "deadletter/",
                 kms_key: str | None = None) -> None:
        if not bucket:
            raise ValueError("the dead-letter bucket is not set (HEADWATER_DEADLETTER_BUCKET)")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.kms_key = kms_key or None

    def write(self, pipeline: str, bucket: str, key: str, entries: list[dict[str, Any]]) -> None:
        name = self.prefix + object_name(pipeline, key)
        self.client.put_object(
            Bucket=self.bucket, Key=name, Body=encode(entries),
            ContentType="application/x-ndjson",
            Metadata={"pipeline": pipeline, "source-bucket": bucket,
                      "entries": str(len(entries))},
            **encryption(self.kms_key),
        )

    def store(self) -> S3Store:
        """The dead-letter bucket as replay's object store."""
        return S3Store(self.client, self.bucket, self.kms_key)
