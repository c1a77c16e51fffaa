"""Test doubles for the engine's ports: sinks in memory (tests, benchmarks), with injected
faults, and a dead-letter in memory. Never shipped in a function artifact.

Cloud sinks live with their adapters (``runtimes/aws/sink.py`` ...); the local
DuckDB sink in ``runtimes/local/``. All follow :class:`runtimes.core.engine.Sink`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from runtimes.core.codec import dumps
from runtimes.core.engine import Failure

__all__ = ["FaultySink", "MemoryDeadLetter", "MemorySink", "NdjsonSink"]


class MemorySink:
    """Keeps written records in a list."""

    def __init__(self, max_batch: int = 500) -> None:
        self.max_batch = max_batch
        self.records: list[dict[str, Any]] = []
        self.calls = 0

    def write(self, records: list[dict[str, Any]]) -> list[Failure]:
        self.calls += 1
        self.records.extend(records)
        return []


class NdjsonSink:
    """Serializes each batch to NDJSON bytes in memory (bytes out, as a real sink would)."""

    def __init__(self, max_batch: int = 500) -> None:
        self.max_batch = max_batch
        self.parts: list[bytes] = []
        self.count = 0

    def write(self, records: list[dict[str, Any]]) -> list[Failure]:
        self.parts.append(b"\n".join(map(dumps, records)) + b"\n")
        self.count += len(records)
        return []

    def getvalue(self) -> bytes:
        return b"".join(self.parts)


class FaultySink(MemorySink):
    """A sink with fault injection, for engine tests (after dlt's dummy destination).

    ``fail(record, attempt) -> None | (error_type, message, retryable)`` decides per record;
    ``down_calls`` makes the first N calls raise as a whole; ``p_fail`` fails records at
    random once each.
    """

    def __init__(self, max_batch: int = 500, *,
                 fail: Callable[[dict[str, Any], int], tuple[str, str, bool] | None] | None = None,
                 down_calls: int = 0, p_fail: float = 0.0, seed: int = 0) -> None:
        super().__init__(max_batch)
        self.fail = fail
        self.down_calls = down_calls
        self.p_fail = p_fail
        self.rng = random.Random(seed)
        self.attempts: dict[int, int] = {}
        self.batches: list[int] = []

    def write(self, records: list[dict[str, Any]]) -> list[Failure]:
        self.calls += 1
        self.batches.append(len(records))
        if self.calls <= self.down_calls:
            raise ConnectionError(f"sink unavailable (call {self.calls})")
        failures: list[Failure] = []
        for i, rec in enumerate(records):
            attempt = self.attempts.get(id(rec), 0) + 1
            self.attempts[id(rec)] = attempt
            verdict = self.fail(rec, attempt) if self.fail else None
            if verdict is None and self.p_fail and attempt == 1 and self.rng.random() < self.p_fail:
                verdict = ("ServiceUnavailableException", "injected transient failure", True)
            if verdict is None:
                self.records.append(rec)
            else:
                failures.append(Failure(i, *verdict))
        return failures


class MemoryDeadLetter:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.objects: list[tuple[str, str]] = []

    def write(self, pipeline: str, bucket: str, key: str, entries: list[dict[str, Any]]) -> None:
        self.objects.append((bucket, key))
        self.entries.extend(entries)
