"""Reading a local object while hashing it, so the content processed is the content the
ledger records (the runner in process, and each worker process)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import IO, Any

__all__ = ["READ_SIZE", "HashingReader"]

READ_SIZE = 1 << 20


class HashingReader:
    """A binary reader over ``f`` hashing what it reads; ``before()`` runs before each
    read (a stop check), ``on_bytes(n)`` after it (progress)."""

    def __init__(self, f: IO[bytes], before: Callable[[], None] = lambda: None,
                 on_bytes: Callable[[int], None] = lambda n: None) -> None:
        self.f = f
        self.h = hashlib.sha256()
        self.before = before
        self.on_bytes = on_bytes

    def read(self, n: int = -1) -> bytes:
        self.before()
        data = self.f.read(n)
        self.h.update(data)
        self.on_bytes(len(data))
        return data

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)

    def drain(self) -> str:
        """Read the rest; the sha256 of everything read."""
        while self.read(READ_SIZE):
            pass
        return self.h.hexdigest()
