"""Helpers of the Azure end-to-end tests: the processed-hub stand-in, the Functions
context, and EventHubEvent objects as the worker builds them (a module with its own name,
so tests import it without clashing with other folders' conftest modules)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import azure.functions as func
import orjson
from azure.eventhub import EventDataBatch
from azure.eventhub.exceptions import EventHubError

EVENTS = Path(__file__).resolve().parents[2] / "events" / "azure"
HUB_MAX_EVENT_BYTES = 1024 * 1024  # Event Hubs Standard: 1 MB per event and per batch


class StandInHub:
    """A stand-in for the processed Event Hub at the client boundary (Event Hubs has no
    emulator that runs here): an object with ``EventHubProducerClient``'s ``create_batch``
    and ``send_batch``, handing out real ``azure.eventhub.EventDataBatch``es with the hub's
    size limit (``max_bytes``), recording every batch sent, and failing the next
    ``fail_sends`` sends with ``EventHubError`` (an injectable outage)."""

    def __init__(self, max_bytes: int = HUB_MAX_EVENT_BYTES) -> None:
        self.max_bytes = max_bytes
        self.sent: list[list[dict[str, Any]]] = []
        self.fail_sends = 0
        self.send_calls = 0

    def create_batch(self, *, max_size_in_bytes: int | None = None,
                     partition_id: str | None = None,
                     partition_key: str | None = None) -> EventDataBatch:
        limit = min(max_size_in_bytes or self.max_bytes, self.max_bytes)
        return EventDataBatch(max_size_in_bytes=limit, partition_id=partition_id,
                              partition_key=partition_key)

    def send_batch(self, batch: EventDataBatch, **_: Any) -> None:
        self.send_calls += 1
        if self.fail_sends:
            self.fail_sends -= 1
            raise EventHubError("injected: the processed hub refused the batch")
        self.sent.append([orjson.loads(e.body_as_str()) for e in batch._internal_events])

    @property
    def events(self) -> list[dict[str, Any]]:
        return [e for batch in self.sent for e in batch]


class RetryContext:
    def __init__(self, retry_count: int, max_retry_count: int) -> None:
        self.retry_count = retry_count
        self.max_retry_count = max_retry_count


class FunctionContext:
    """The ``azure.functions.Context`` the worker passes: invocation id and retry context."""

    function_name = "headwater"

    def __init__(self, retry_count: int = 0, max_retry_count: int = 5) -> None:
        self.invocation_id = "3f8e1c2a-0000-4000-8000-00000000e2e0"
        self.retry_context = RetryContext(retry_count, max_retry_count)


_indexed: list[Any] = []


def indexed_function() -> Any:
    """The app's one function as the worker indexes it when it loads function_app.py
    (indexing runs once per process, so every test module shares this)."""
    if not _indexed:
        from runtimes.azure import function_app

        (fn,) = function_app.app.get_functions()
        _indexed.append(fn)
    return _indexed[0]


def hub_events(bodies: list[bytes]) -> list[func.EventHubEvent]:
    """``azure.functions.EventHubEvent`` objects as the worker builds them for a
    cardinality-many trigger."""
    return [func.EventHubEvent(body=b, sequence_number=n, offset=str(n * 512),
                               partition_key=None) for n, b in enumerate(bodies)]
