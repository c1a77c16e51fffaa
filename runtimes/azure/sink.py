"""The warehouse sink on Azure: the processed Event Hub (``EventHubProducerClient``), which
Data Explorer ingests through its Event Hub data connection (JSON, one record per event).

A ``write`` fills ``EventDataBatch``es in record order and sends one when the next record
does not fit (the batch's own size limit: the hub's maximum message size), so every record
is sent exactly once per ``write``. A record that does not fit even an empty batch comes
back as a non-retryable :class:`~runtimes.core.engine.Failure` (it goes to the
dead-letter). A ``send_batch`` that raises before anything of this ``write`` was sent
raises (the engine retries the batch, then fails the invocation); one that raises after
earlier batches were sent reports only its own records as failed, so the accepted ones are
not resent.
"""

from __future__ import annotations

from typing import Any

from ..core.codec import dumps
from ..core.engine import Failure

__all__ = ["EventHubSink"]


class EventHubSink:
    """Writes records to the processed hub through ``producer``; see the module docstring."""

    def __init__(self, producer: Any, max_batch: int = 500) -> None:
        self.producer = producer
        self.max_batch = max(1, max_batch)
        self.batches = 0

    def write(self, records: list[dict[str, Any]]) -> list[Failure]:
        from azure.eventhub import EventData

        failures: list[Failure] = []
        sent = False
        batch, members = self.producer.create_batch(), []
        for i, rec in enumerate(records):
            event = EventData(dumps(rec))
            if self._add(batch, event):
                members.append(i)
                continue
            if members:  # full: send it and start a new one
                sent |= self._send(batch, members, failures, sent)
                batch, members = self.producer.create_batch(), []
                if self._add(batch, event):
                    members.append(i)
                    continue
            failures.append(Failure(i, "RecordTooLarge",
                                    f"record is {len(dumps(rec))} bytes as JSON, over the "
                                    "processed hub's maximum event size", retryable=False))
        if members:
            self._send(batch, members, failures, sent)
        return failures

    @staticmethod
    def _add(batch: Any, event: Any) -> bool:
        try:
            batch.add(event)
        except ValueError:  # EventDataBatch: "has reached its size limit"
            return False
        return True

    def _send(self, batch: Any, members: list[int], failures: list[Failure],
              sent_before: bool) -> bool:
        """One ``send_batch``; returns whether the hub took it."""
        try:
            self.producer.send_batch(batch)
        except Exception as exc:
            if not sent_before:
                raise
            failures.extend(Failure(i, type(exc).__name__, str(exc)) for i in members)
            return False
        self.batches += 1
        return True
