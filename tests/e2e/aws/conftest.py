"""Fixtures for the AWS runtime end to end: a moto server on 127.0.0.1 and the resources
of the orders pipeline of ``Pulumi.aws.yaml``, created from that same spec.

The server is one per test session (a free port chosen by the OS) and is reset between
tests through ``POST /moto-api/reset``; each test gets the AWS environment variables
pointing at it and a handler with no cached clients or engine.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest

from headwater.testing import moto_server as headwater_moto_server
from headwater.testing import reset_moto

ROOT = Path(__file__).resolve().parents[3]
REGION = "us-east-1"
USERS = [
    {"user_id": "u1", "tier": "gold", "country": "FR", "since": 2019},
    {"user_id": "u2", "tier": "silver", "country": "DE", "since": 2021},
    {"user_id": "u3", "tier": "bronze", "country": "US", "since": 2023},
]


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    with headwater_moto_server() as url:
        yield url


@pytest.fixture
def aws(moto_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """A clean moto server and an environment in which boto3 talks only to it."""
    reset_moto(moto_server)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    from runtimes.aws import handler

    handler._reset()
    yield moto_server
    handler._reset()


class FakeContext:
    """The Lambda context object, with a scripted ``get_remaining_time_in_millis``."""

    function_name = "headwater-orders"
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"

    def __init__(self, *remaining_ms: int) -> None:
        self.remaining = list(remaining_ms) or [300_000]

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining.pop(0) if len(self.remaining) > 1 else self.remaining[0]


@dataclass
class Stack:
    """The orders pipeline's AWS resources on moto, and helpers to drive and read them."""

    spec: Any
    manifest_path: Path
    raw: str = "headwater-raw"
    curated: str = "headwater-curated"
    deadletter: str = "headwater-deadletter"
    queue: str = "headwater-orders"
    stream: str = "headwater-orders"
    users: str = "headwater-orders-users"
    idempotency: str = "headwater-orders-idempotency"
    queue_url: str = ""
    queue_arn: str = ""
    s3: Any = None
    sqs: Any = None
    ddb: Any = None
    firehose: Any = None
    env: dict[str, str] = field(default_factory=dict)

    def put(self, key: str, body: bytes | str) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.s3.put_object(Bucket=self.raw, Key=key, Body=data)

    def put_gz(self, key: str, body: str) -> None:
        self.put(key, gzip.compress(body.encode(), mtime=0))

    def receive(self) -> list[dict[str, Any]]:
        """Every message S3 has put on the queue so far, in order."""
        out: list[dict[str, Any]] = []
        while True:
            resp = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                            AttributeNames=["All"], WaitTimeSeconds=0)
            batch = resp.get("Messages", [])
            if not batch:
                return out
            out.extend(batch)

    def event(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """The event Lambda's SQS event source hands the function for ``messages``."""
        return {"Records": [{
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": m.get("Attributes", {}),
            "messageAttributes": {},
            "md5OfBody": m["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": REGION,
        } for m in messages]}

    def _objects(self, bucket: str) -> list[str]:
        keys: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys.extend(o["Key"] for o in page.get("Contents", []))
        return sorted(keys)

    def delivered_objects(self) -> list[str]:
        return self._objects(self.curated)

    def delivered(self) -> list[dict[str, Any]]:
        """Every record Firehose wrote to the curated bucket (JSON lines in the emulator)."""
        out = []
        for key in self.delivered_objects():
            body = self.s3.get_object(Bucket=self.curated, Key=key)["Body"].read()
            out.extend(orjson.loads(line) for line in body.splitlines() if line.strip())
        return out

    def deadletters(self) -> dict[str, list[dict[str, Any]]]:
        out = {}
        for key in self._objects(self.deadletter):
            body = self.s3.get_object(Bucket=self.deadletter, Key=key)["Body"].read()
            out[key] = [orjson.loads(line) for line in body.splitlines()]
        return out

    def claim(self, bucket: str, key: str) -> dict[str, Any] | None:
        etag = self.s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
        item = self.ddb.get_item(TableName=self.idempotency, ConsistentRead=True,
                                 Key={"pk": {"S": f"{bucket}/{key}#{etag}"}}).get("Item")
        return item


@pytest.fixture
def orders_stack(aws: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Stack:
    """Create what the orders pipeline needs, from its spec in ``Pulumi.aws.yaml``:
    raw bucket with an S3 -> SQS notification on the source prefix, queue with a redrive
    DLQ, a Firehose stream into the curated bucket, the lookup table(s), an idempotency
    table with TTL, a dead-letter bucket; then the handler's environment."""
    from headwater.manifest import build_manifest
    from headwater.spec import load_stack_file

    spec = load_stack_file(ROOT / "Pulumi.aws.yaml").pipeline("orders")
    manifest_path = tmp_path / "headwater_manifest.json"
    manifest_path.write_text(json.dumps(build_manifest(spec)), encoding="utf-8")
    st = Stack(spec=spec, manifest_path=manifest_path)
    st.s3 = boto3.client("s3", region_name=REGION)
    st.sqs = boto3.client("sqs", region_name=REGION)
    st.ddb = boto3.client("dynamodb", region_name=REGION)
    st.firehose = boto3.client("firehose", region_name=REGION)

    for bucket in (st.raw, st.curated, st.deadletter):
        st.s3.create_bucket(Bucket=bucket)
        st.s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True,
            "BlockPublicPolicy": True, "RestrictPublicBuckets": True})

    dlq = st.sqs.create_queue(QueueName=f"{st.queue}-dlq")["QueueUrl"]
    dlq_arn = st.sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    st.queue_url = st.sqs.create_queue(QueueName=st.queue, Attributes={
        "VisibilityTimeout": str(6 * spec.limits.timeout_s),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn,
                                     "maxReceiveCount": spec.limits.max_receive_count}),
    })["QueueUrl"]
    st.queue_arn = st.sqs.get_queue_attributes(QueueUrl=st.queue_url, AttributeNames=[
        "QueueArn"])["Attributes"]["QueueArn"]
    rules = [{"Name": "prefix", "Value": spec.source.prefix}]
    if spec.source.suffix:
        rules.append({"Name": "suffix", "Value": spec.source.suffix})
    st.s3.put_bucket_notification_configuration(Bucket=st.raw, NotificationConfiguration={
        "QueueConfigurations": [{"Id": spec.name, "QueueArn": st.queue_arn,
                                 "Events": ["s3:ObjectCreated:*"],
                                 "Filter": {"Key": {"FilterRules": rules}}}]})

    st.firehose.create_delivery_stream(
        DeliveryStreamName=st.stream, DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/headwater-firehose",
            "BucketARN": f"arn:aws:s3:::{st.curated}",
            "Prefix": f"{spec.sink.table}/",
            "ErrorOutputPrefix": f"errors/{spec.sink.table}/",
        })

    tables, keys = {}, {}
    for step in spec.transforms:
        if step.use == "enrich":
            tables[step.with_["table"]] = st.users
            keys[step.with_["table"]] = step.with_["key"]
    for logical, physical in tables.items():
        _table(st.ddb, physical, keys[logical])
    st.ddb.batch_write_item(RequestItems={st.users: [
        {"PutRequest": {"Item": {k: ({"N": str(v)} if isinstance(v, int) else {"S": v})
                                 for k, v in row.items()}}} for row in USERS]})
    _table(st.ddb, st.idempotency, "pk")
    st.ddb.update_time_to_live(TableName=st.idempotency, TimeToLiveSpecification={
        "Enabled": True, "AttributeName": "expires_at"})

    st.env = {
        "HEADWATER_MANIFEST": str(manifest_path),
        "HEADWATER_PIPELINE": spec.name,
        "HEADWATER_STREAM": st.stream,
        "HEADWATER_DEADLETTER_BUCKET": st.deadletter,
        "HEADWATER_DEADLETTER_PREFIX": spec.deadletter.prefix,
        "HEADWATER_IDEMPOTENCY_TABLE": st.idempotency,
        "HEADWATER_LOOKUP_TABLES": json.dumps(tables),
        "HEADWATER_LOOKUP_KEYS": json.dumps(keys),
        "HEADWATER_MIN_REMAINING_MS": "10000",
    }
    for name, value in st.env.items():
        monkeypatch.setenv(name, value)
    return st


def _table(ddb: Any, name: str, key: str) -> None:
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": key, "KeyType": "HASH"}])


@pytest.fixture
def fake_context() -> Callable[..., FakeContext]:
    return FakeContext
