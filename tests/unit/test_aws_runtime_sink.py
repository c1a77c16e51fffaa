"""The Firehose sink's handling of the PutRecordBatch limits and of partial failures.

The client here is a recorder standing in for boto3's Firehose client: the point is how
records are split into calls and how answers map back to records, which the emulator does
not check (moto enforces neither the 500-record nor the 4 MiB limit). The sink against a
real emulator is covered in tests/e2e/aws/.
"""

from __future__ import annotations

import io
import json

import orjson
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from headwater.testing.doubles import MemoryDeadLetter
from runtimes.aws.metrics import emf, emit
from runtimes.aws.ports import TtlCache, from_dynamo
from runtimes.aws.sink import MAX_CALL_BYTES, MAX_RECORD_BYTES, FirehoseSink
from runtimes.core.engine import Engine, RetryPolicy


class Recorder:
    def __init__(self, answer=None, raise_on=()):
        self.calls: list[list[bytes]] = []
        self.answer = answer
        self.raise_on = set(raise_on)

    def put_record_batch(self, DeliveryStreamName, Records):
        self.calls.append([r["Data"] for r in Records])
        n = len(self.calls)
        if n in self.raise_on:
            raise ClientError({"Error": {"Code": "ServiceUnavailableException",
                                         "Message": "down"}}, "PutRecordBatch")
        if self.answer:
            return self.answer(n, Records)
        return {"FailedPutCount": 0, "RequestResponses": [{"RecordId": "x"} for _ in Records]}


def test_records_are_json_lines_and_at_most_500_per_call():
    rec = Recorder()
    sink = FirehoseSink(rec, "s", max_batch=10_000)
    assert sink.max_batch == 500
    records = [{"i": i, "v": "é"} for i in range(1201)]
    assert sink.write(records) == []
    assert [len(c) for c in rec.calls] == [500, 500, 201]
    assert rec.calls[0][0] == orjson.dumps({"i": 0, "v": "é"}) + b"\n"


def test_calls_stay_under_4_mib():
    rec = Recorder()
    sink = FirehoseSink(rec, "s")
    big = "x" * (900 * 1024)
    records = [{"i": i, "blob": big} for i in range(10)]
    assert sink.write(records) == []
    sizes = [sum(map(len, c)) for c in rec.calls]
    assert all(s <= MAX_CALL_BYTES for s in sizes)
    assert [len(c) for c in rec.calls] == [4, 4, 2]
    assert [json.loads(d)["i"] for c in rec.calls for d in c] == list(range(10))


def test_record_over_1000_kib_fails_alone_and_is_not_retryable():
    rec = Recorder()
    sink = FirehoseSink(rec, "s")
    records = [{"i": 0}, {"i": 1, "blob": "x" * MAX_RECORD_BYTES}, {"i": 2}]
    (f,) = sink.write(records)
    assert (f.index, f.error_type, f.retryable) == (1, "RecordTooLarge", False)
    assert [json.loads(d)["i"] for d in rec.calls[0]] == [0, 2]


def test_entries_with_error_codes_come_back_as_retryable_failures_with_their_index():
    def answer(n, records):
        out = [{"RecordId": "x"} for _ in records]
        out[1] = {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down."}
        out[3] = {"ErrorCode": "InternalFailure", "ErrorMessage": "oops"}
        return {"FailedPutCount": 2, "RequestResponses": out}

    sink = FirehoseSink(Recorder(answer), "s")
    failures = sink.write([{"i": i} for i in range(5)])
    assert [(f.index, f.error_type, f.message, f.retryable) for f in failures] == [
        (1, "ServiceUnavailableException", "Slow down.", True),
        (3, "InternalFailure", "oops", True)]


def test_a_call_failing_before_anything_was_accepted_raises():
    sink = FirehoseSink(Recorder(raise_on={1}), "s")
    with pytest.raises(ClientError):
        sink.write([{"i": i} for i in range(3)])


def test_a_later_call_failing_reports_only_its_own_records():
    rec = Recorder(raise_on={2})
    sink = FirehoseSink(rec, "s")
    failures = sink.write([{"i": i} for i in range(1200)])
    assert [len(c) for c in rec.calls] == [500, 500, 200]
    assert [f.index for f in failures] == list(range(500, 1000))
    assert {f.error_type for f in failures} == {"ServiceUnavailableException"}


def test_engine_retries_only_the_failed_entries_through_the_sink():
    def answer(n, records):
        out = [{"RecordId": "x"} for _ in records]
        if n == 1:
            out[2] = {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "busy"}
            return {"FailedPutCount": 1, "RequestResponses": out}
        return {"FailedPutCount": 0, "RequestResponses": out}

    rec = Recorder(answer)
    engine = Engine("p", [], FirehoseSink(rec, "s"), MemoryDeadLetter(),
                    retry=RetryPolicy(sleep=lambda s: None))
    c = engine.process_object(io.BytesIO(b'{"i":0}\n{"i":1}\n{"i":2}\n{"i":3}\n'), "k.ndjson")
    assert [[json.loads(d)["i"] for d in call] for call in rec.calls] == [[0, 1, 2, 3], [2]]
    assert (c.written, c.retries, c.dead_lettered) == (4, 1, 0)


def test_connection_errors_on_first_call_raise_for_the_engine_to_retry():
    class Down:
        def put_record_batch(self, **kw):
            raise EndpointConnectionError(endpoint_url="http://firehose")

    with pytest.raises(EndpointConnectionError):
        FirehoseSink(Down(), "s").write([{"i": 1}])


def test_from_dynamo_gives_plain_json_values():
    item = {"user_id": {"S": "u1"}, "n": {"N": "42"}, "f": {"N": "1.5"}, "ok": {"BOOL": True},
            "none": {"NULL": True}, "m": {"M": {"a": {"N": "1"}}}, "l": {"L": [{"S": "x"}]},
            "ss": {"SS": ["b", "a"]}, "ns": {"NS": ["2", "1.5"]}}
    assert from_dynamo(item) == {"user_id": "u1", "n": 42, "f": 1.5, "ok": True, "none": None,
                                 "m": {"a": 1}, "l": ["x"], "ss": ["a", "b"], "ns": [1.5, 2]}
    assert isinstance(from_dynamo(item)["n"], int)


def test_ttl_cache_bounds_size_and_age():
    now = [0.0]
    cache = TtlCache(max_entries=2, ttl_s=10, clock=lambda: now[0])
    cache.put("a", 1)
    cache.put("b", None)
    cache.put("c", 3)
    assert cache.get("a", "miss") == "miss" and cache.get("b", "miss") is None
    assert len(cache) == 2
    now[0] = 11
    assert cache.get("c", "miss") == "miss"


def test_emf_document_has_namespace_dimensions_units_and_values():
    dims = {"project": "web", "stack": "prod", "pipeline": "ignored"}
    doc = emf("orders", {"Received": 3, "SinkSeconds": 0.25, "Seconds": 0.5}, now=1714564800,
              dims=dims)
    assert doc["_aws"] == {"Timestamp": 1714564800000, "CloudWatchMetrics": [{
        "Namespace": "headwater", "Dimensions": [["project", "stack", "pipeline"]],
        "Metrics": [{"Name": "Received", "Unit": "Count"},
                    {"Name": "SinkSeconds", "Unit": "Seconds"},
                    {"Name": "Seconds", "Unit": "Seconds"}]}]}
    assert (doc["project"], doc["stack"], doc["pipeline"]) == ("web", "prod", "orders")
    assert (doc["Received"], doc["Seconds"]) == (3, 0.5)


def test_emf_line_takes_project_and_stack_from_the_function_environment(monkeypatch):
    monkeypatch.setenv("HEADWATER_PULUMI_PROJECT", "web")
    monkeypatch.setenv("HEADWATER_STACK", "prod")
    out = io.StringIO()
    emit("orders", {"Written": 1}, out)
    line = out.getvalue()
    assert line.endswith("\n") and line.count("\n") == 1
    doc = json.loads(line)
    directive = doc["_aws"]["CloudWatchMetrics"][0]
    # every dimension named by the directive is a top-level member, as EMF requires
    assert all(doc[d] for d in directive["Dimensions"][0])
    assert (doc["project"], doc["stack"], doc["pipeline"]) == ("web", "prod", "orders")
    assert json.loads(line)["Written"] == 1
