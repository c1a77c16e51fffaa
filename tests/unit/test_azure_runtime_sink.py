"""The processed-hub sink on a stand-in producer (real ``EventDataBatch``es, injectable
send failures): batch splitting, oversized records, partial send failures."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from azure.eventhub import EventDataBatch
from azure.eventhub.exceptions import EventHubError

from runtimes.azure.sink import EventHubSink


class Producer:
    """A stand-in for ``EventHubProducerClient`` (create_batch/send_batch only)."""

    def __init__(self, limit: int, fail: set[int] | None = None) -> None:
        self.limit, self.fail, self.calls = limit, fail or set(), 0
        self.sent: list[list[dict[str, Any]]] = []

    def create_batch(self, **_: Any) -> EventDataBatch:
        return EventDataBatch(max_size_in_bytes=self.limit)

    def send_batch(self, batch: EventDataBatch) -> None:
        self.calls += 1
        if self.calls in self.fail:
            raise EventHubError(f"injected failure of send {self.calls}")
        self.sent.append([orjson.loads(e.body_as_str()) for e in batch._internal_events])


def _records(n: int) -> list[dict[str, Any]]:
    return [{"i": i, "pad": "x" * 50} for i in range(n)]


def test_full_batches_are_sent_and_a_new_one_started_each_record_once():
    p = Producer(limit=400)
    assert EventHubSink(p).write(_records(20)) == []
    assert len(p.sent) > 3
    assert [r["i"] for b in p.sent for r in b] == list(range(20))


def test_a_record_too_large_for_an_empty_batch_fails_alone_and_not_retryably():
    p = Producer(limit=400)
    recs = _records(3)
    recs[1]["pad"] = "y" * 1000
    (failure,) = EventHubSink(p).write(recs)
    assert (failure.index, failure.error_type, failure.retryable) == (1, "RecordTooLarge", False)
    assert [r["i"] for b in p.sent for r in b] == [0, 2]


def test_first_send_failing_raises_so_the_engine_retries_the_whole_write():
    with pytest.raises(EventHubError):
        EventHubSink(Producer(limit=400, fail={1})).write(_records(20))


def test_a_later_send_failing_reports_only_its_records():
    p = Producer(limit=400, fail={2})
    failures = EventHubSink(p).write(_records(20))
    sent = {r["i"] for b in p.sent for r in b}
    failed = {f.index for f in failures}
    assert failed and not (sent & failed) and sent | failed == set(range(20))
    assert all(f.retryable for f in failures)
