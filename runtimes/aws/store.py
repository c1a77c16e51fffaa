"""The object-store port on S3 (dead-letter replay and forget)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["S3Store", "encryption"]


def encryption(kms_key: str | None) -> dict[str, str]:
    """``put_object``'s encryption arguments: the stack's KMS key, else SSE-S3."""
    if kms_key:
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key}
    return {"ServerSideEncryption": "AES256"}


class S3Store:
    def __init__(self, client: Any, bucket: str, kms_key: str | None = None) -> None:
        self.client = client
        self.bucket = bucket
        self.kms_key = kms_key or None

    @property
    def location(self) -> str:
        """The bucket, naming the store in claims and messages."""
        return self.bucket

    def list(self, prefix: str) -> Iterator[str]:
        for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield obj["Key"]

    def read(self, name: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=name)["Body"].read()

    def write(self, name: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=name, Body=data,
                               **encryption(self.kms_key))

    def delete(self, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=name)
