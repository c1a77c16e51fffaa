"""The matrix on the AWS runtime: the Lambda handler on a moto server (S3 -> SQS with a
redrive DLQ, DynamoDB idempotency and lookups, Firehose into S3), driven as the SQS
event source does: receive, invoke, delete what succeeded, let the rest become visible
again (moto counts receives and moves a message to the DLQ after ``maxReceiveCount``).

Faults are injected at the boto3 client boundary (Firehose ``PutRecordBatch``, DynamoDB
``BatchGetItem``, the S3 response stream); a kill is a real SIGKILL of a forked process
running the handler.
"""

from __future__ import annotations

import json
import os
import signal
from typing import Any
from urllib.parse import unquote_plus

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError, ResponseStreamingError
from e2e.aws.conftest import FakeContext, aws, orders_stack  # noqa: F401

from runtimes.aws import clients, handler

from . import matrix
from .common import ids, ndjson, orders

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
KEY = "raw/orders/2024/05/01/batch.ndjson"
N = 10


@pytest.fixture
def st(orders_stack):  # noqa: F811
    doc = json.loads(orders_stack.manifest_path.read_text())
    doc["pipeline"]["limits"]["sink_batch"] = 4
    orders_stack.manifest_path.write_text(json.dumps(doc))
    return orders_stack


def wrap(service: str, **methods):
    """Replace methods of the container's client for ``service`` (the real one underneath)."""
    real = clients.client(service)

    class Faulty:
        def __getattr__(self, name):
            return methods.get(name) or getattr(real, name)

    clients._clients[service] = Faulty()
    return real


def _error(code: str, op: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"injected {code}"}}, op)


def receive(st) -> list[dict[str, Any]]:
    return st.sqs.receive_message(QueueUrl=st.queue_url, MaxNumberOfMessages=10,
                                  AttributeNames=["All"], VisibilityTimeout=60,
                                  WaitTimeSeconds=0).get("Messages", [])


def settle(st, msgs, result) -> None:
    """What the event source does with the answer: delete successes, release failures."""
    failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
    for m in msgs:
        if m["MessageId"] in failed:
            st.sqs.change_message_visibility(QueueUrl=st.queue_url,
                                             ReceiptHandle=m["ReceiptHandle"],
                                             VisibilityTimeout=0)
        else:
            st.sqs.delete_message(QueueUrl=st.queue_url, ReceiptHandle=m["ReceiptHandle"])


def drain(st, rounds: int = 8, between=lambda n: None) -> list[dict]:
    results = []
    for n in range(rounds):
        msgs = receive(st)
        if not msgs:
            break
        between(n)
        result = handler.handler(st.event(msgs), FakeContext(120_000))
        results.append(result)
        settle(st, msgs, result)
    return results


def dlq(st) -> list[dict[str, Any]]:
    url = st.sqs.get_queue_url(QueueName=f"{st.queue}-dlq")["QueueUrl"]
    return st.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])


def entries(st) -> list[dict[str, Any]]:
    return [e for v in st.deadletters().values() for e in v]


def finish(st, cell: str, recs, note: str, held=(), at_least_once=False):
    return matrix.record("aws", cell, records_in=ids(recs), sink=st.delivered(),
                         deadletters=entries(st), held=held, note=note,
                         at_least_once=at_least_once)


def firehose_fault(fault):
    """Firehose whose ``PutRecordBatch`` asks ``fault(call, records)``: None (pass), a set of
    order ids to refuse with ServiceUnavailableException entries, or an exception."""
    state = {"calls": 0}
    real = clients.client("firehose")

    def put_record_batch(**kw):
        state["calls"] += 1
        recs = [json.loads(r["Data"]) for r in kw["Records"]]
        verdict = fault(state["calls"], recs)
        if isinstance(verdict, BaseException):
            raise verdict
        if not verdict:
            return real.put_record_batch(**kw)
        keep = [r for r, d in zip(kw["Records"], recs, strict=True)
                if d["order_id"] not in verdict]
        if keep:
            real.put_record_batch(DeliveryStreamName=kw["DeliveryStreamName"], Records=keep)
        return {"FailedPutCount": len(recs) - len(keep), "RequestResponses": [
            {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "injected"}
            if d["order_id"] in verdict else {"RecordId": "x"} for d in recs]}

    wrap("firehose", put_record_batch=put_record_batch)
    return state


def test_partial(st):
    recs = orders(N, bad_value={3})
    st.put(KEY, ndjson(recs))
    firehose_fault(lambda call, r: {"5", "8"})
    drain(st)
    row = finish(st, "partial", recs, "entries refused until the attempts ran out: "
                 "dead-lettered (step sink); a chain failure dead-lettered")
    assert row.dead_lettered == 3


def test_throttle(st):
    recs = orders(N)
    st.put(KEY, ndjson(recs))
    firehose_fault(lambda call, r: _error("ThrottlingException", "PutRecordBatch")
                   if call <= 2 else None)
    (result,) = drain(st)
    assert result["batchItemFailures"] == []
    finish(st, "throttle", recs, "ThrottlingException twice, retried with backoff")


def test_sink_down(st):
    recs = orders(N)
    st.put(KEY, ndjson(recs))
    down = {"on": True}
    firehose_fault(lambda call, r: _error("ServiceUnavailableException", "PutRecordBatch")
                   if down["on"] else None)
    results = drain(st, between=lambda n: down.update(on=n == 0))
    assert results[0]["batchItemFailures"] and not results[-1]["batchItemFailures"]
    finish(st, "sink-down", recs, "message failed (ReportBatchItemFailures); SQS redelivered")


def test_read_reset(st):
    recs = orders(N)
    st.put(KEY, ndjson(recs))
    real = clients.client("s3")
    armed = {"on": True}

    class Resetting:
        def __init__(self, body):
            self.body, self.n = body, 0

        def read(self, n=-1):
            data = self.body.read(min(n, 100) if n and n > 0 else 100)
            self.n += len(data)
            if armed["on"] and self.n > 300:
                armed["on"] = False
                raise ResponseStreamingError(error="Connection reset by peer")
            return data

        def close(self):
            self.body.close()

    def get_object(**kw):
        resp = real.get_object(**kw)
        return {**resp, "Body": Resetting(resp["Body"])}

    wrap("s3", get_object=get_object)
    results = drain(st)
    assert results[0]["batchItemFailures"]
    finish(st, "read-reset", recs, "stream reset after 300 bytes: message failed, redelivery "
           "resumed after the checkpoint")


def _fork(fn) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            handler._reset()
            fn()
        finally:
            os._exit(3)
    return pid


def _expire_claims(st) -> None:
    """The visibility timeout (6x the function timeout) outlasts a dead invocation's lease:
    when SQS redelivers, the lease has ended. Here the lease is ended at once."""
    for item in st.ddb.scan(TableName=st.idempotency)["Items"]:
        st.ddb.update_item(TableName=st.idempotency, Key={"pk": item["pk"]},
                           UpdateExpression="SET lease_until = :z",
                           ExpressionAttributeValues={":z": {"N": "0"}})


def test_killed(st):
    recs = orders(N)
    st.put(KEY, ndjson(recs))
    msgs = receive(st)

    def child():
        real = clients.client("firehose")
        calls = {"n": 0}

        def put_record_batch(**kw):
            calls["n"] += 1
            if calls["n"] == 2:  # half of the second batch reaches Firehose, then SIGKILL
                real.put_record_batch(DeliveryStreamName=kw["DeliveryStreamName"],
                                      Records=kw["Records"][: len(kw["Records"]) // 2])
                os.kill(os.getpid(), signal.SIGKILL)
            return real.put_record_batch(**kw)

        wrap("firehose", put_record_batch=put_record_batch)
        handler.handler(st.event(msgs), FakeContext(120_000))

    _, status = os.waitpid(_fork(child), 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    for m in msgs:  # the visibility timeout ends
        st.sqs.change_message_visibility(QueueUrl=st.queue_url, ReceiptHandle=m["ReceiptHandle"],
                                         VisibilityTimeout=0)
    _expire_claims(st)
    drain(st)
    row = finish(st, "killed", recs, "SIGKILL after half a batch; redelivery resumed at the "
                 "last checkpoint, resending that half batch with the same ids (the Athena "
                 "view <table>_dedup shows one row per id)",
                 at_least_once=True)
    assert row.duplicates == 2  # the half (2 of 4 rows) of the batch the kill interrupted


def test_duplicate(st):
    recs = orders(N)
    st.put(KEY, ndjson(recs))
    (msg,) = [m for m in receive(st) if "s3:TestEvent" not in m["Body"]]
    event = st.event([msg, {**msg, "MessageId": "copy-" + msg["MessageId"]}])
    r, w = os.pipe()

    def child():
        os.read(r, 1)  # both start together
        result = handler.handler(event, FakeContext(120_000))
        os._exit(len(result["batchItemFailures"]))

    pids = [_fork(child), _fork(child)]
    os.write(w, b"xx")
    codes = [os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in pids]
    assert all(c in (0, 1, 2) for c in codes), codes
    st.sqs.change_message_visibility(QueueUrl=st.queue_url, ReceiptHandle=msg["ReceiptHandle"],
                                     VisibilityTimeout=0)
    drain(st)
    finish(st, "duplicate", recs, "4 deliveries in 2 concurrent invocations: one claim wins "
           "(DynamoDB conditional write), the others see BUSY or DONE")


def test_overwritten(st):
    first, second = orders(N), orders(N, start=101)
    st.put(KEY, ndjson(first))
    st.put(KEY, ndjson(second))
    drain(st)
    finish(st, "overwritten", second, "v1's notification: 412 on IfMatch, acknowledged as "
           "superseded (v1 no longer exists); v2 written once")


def test_fail_after_partial(st):
    recs = orders(N)
    st.put(KEY, ndjson(recs))
    phase = {"first": True}
    firehose_fault(lambda call, r: _error("ServiceUnavailableException", "PutRecordBatch")
                   if phase["first"] and call > 1 else None)
    results = drain(st, between=lambda n: phase.update(first=n == 0))
    assert results[0]["batchItemFailures"]
    finish(st, "fail-after-partial", recs, "first batch accepted, then the sink failed the "
           "invocation; the redelivery resumed after the checkpoint")


def test_poison(st):
    recs = orders(N)
    st.put(KEY, ndjson(recs))
    real = clients.client("s3")

    def get_object(**kw):
        raise ReadTimeoutError(endpoint_url=f"s3://{kw['Bucket']}/{kw['Key']}")

    wrap("s3", get_object=get_object)
    results = drain(st, rounds=6)
    assert len(results) == st.spec.limits.max_receive_count
    (dead,) = dlq(st)
    assert unquote_plus(json.loads(dead["Body"])["Records"][0]["s3"]["object"]["key"]) == KEY
    assert real.head_object(Bucket=st.raw, Key=KEY)  # the object is intact for a redrive
    finish(st, "poison", recs, f"read fails every time: after maxReceiveCount="
           f"{st.spec.limits.max_receive_count} the message is in the SQS DLQ",
           held=ids(recs))


def test_lookup_timeout(st):
    recs = orders(N)
    st.put(KEY, ndjson(recs))
    real = clients.client("dynamodb")
    calls = {"n": 0}

    def batch_get_item(**kw):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")
        return real.batch_get_item(**kw)

    wrap("dynamodb", batch_get_item=batch_get_item)
    results = drain(st)
    assert results[0]["batchItemFailures"]
    finish(st, "lookup-timeout", recs, "ReadTimeoutError -> Retryable: message failed, "
           "redelivered, written")
