"""The object-store port on a Blob container (dead-letter replay and forget)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["BlobStore"]


class BlobStore:
    def __init__(self, container: Any) -> None:
        self.container = container  # a ContainerClient

    @property
    def location(self) -> str:
        """The container, naming the store in claims and messages."""
        return str(self.container.container_name)

    def list(self, prefix: str) -> Iterator[str]:
        for blob in self.container.list_blobs(name_starts_with=prefix):
            yield blob.name

    def read(self, name: str) -> bytes:
        return self.container.download_blob(name).readall()

    def write(self, name: str, data: bytes) -> None:
        self.container.upload_blob(name, data, overwrite=True)

    def delete(self, name: str) -> None:
        self.container.delete_blob(name)
