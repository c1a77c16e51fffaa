"""The object-store port on GCS (dead-letter replay and forget)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["GcsStore"]


class GcsStore:
    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    @property
    def location(self) -> str:
        """The bucket, naming the store in claims and messages."""
        return self.bucket

    def list(self, prefix: str) -> Iterator[str]:
        for blob in self.client.list_blobs(self.bucket, prefix=prefix):
            yield blob.name

    def read(self, name: str) -> bytes:
        return self.client.bucket(self.bucket).blob(name).download_as_bytes()

    def write(self, name: str, data: bytes) -> None:
        self.client.bucket(self.bucket).blob(name).upload_from_string(
            data, content_type="application/x-ndjson")

    def delete(self, name: str) -> None:
        self.client.bucket(self.bucket).blob(name).delete()
