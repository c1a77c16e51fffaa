"""Pulumi mocks that answer like AWS, for unit tests of programs that use headwater.

``pulumi.runtime.set_mocks(AwsMocks(), preview=False)`` before running a program: each
registration gets the id and outputs AWS would return (names, ARNs and URLs in AWS's own
formats), and the provider functions headwater calls (caller identity, region, partition)
answer for ``ACCOUNT`` in ``REGION``. headwater's own tests and benchmarks use it; so can
the tests of a program that attaches more to a pipeline's children.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pulumi

__all__ = ["ACCOUNT", "REGION", "AwsMocks", "aws_outputs"]

ACCOUNT = "123456789012"
REGION = "eu-west-1"

_ARNS = {  # type -> (service, resource part of the ARN)
    "aws:lambda/function:Function": ("lambda", "function:"),
    "aws:cloudwatch/logGroup:LogGroup": ("logs", "log-group:"),
    "aws:dynamodb/table:Table": ("dynamodb", "table/"),
    "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream": ("firehose", "deliverystream/"),
    "aws:iam/role:Role": ("iam", "role/"),
    "aws:sns/topic:Topic": ("sns", ""),
    "aws:cloudwatch/metricAlarm:MetricAlarm": ("cloudwatch", "alarm:"),
    "aws:glue/catalogDatabase:CatalogDatabase": ("glue", "database/"),
    "aws:glue/catalogTable:CatalogTable": ("glue", "table/"),
    "aws:lambda/eventSourceMapping:EventSourceMapping": ("lambda", "event-source-mapping:"),
    "aws:cloudwatch/eventRule:EventRule": ("events", "rule/"),
}

_CALLS = {
    "aws:index/getCallerIdentity:getCallerIdentity": {
        "accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:user/ci", "id": ACCOUNT,
        "userId": "AIDA"},
    "aws:index/getRegion:getRegion": {
        "region": REGION, "name": REGION, "id": REGION, "description": "Europe (Ireland)",
        "endpoint": f"ec2.{REGION}.amazonaws.com"},
    "aws:index/getPartition:getPartition": {
        "partition": "aws", "id": "aws", "dnsSuffix": "amazonaws.com",
        "reverseDnsPrefix": "com.amazonaws"},
}


def aws_outputs(typ: str, name: str, inputs: dict[str, Any], rid: str = "") -> tuple[str, dict[str, Any]]:
    """The id and state AWS would return for a resource of type ``typ``."""
    state = dict(inputs)
    if typ == "aws:s3/bucket:Bucket":
        bucket = inputs.get("bucket") or rid or f"{inputs.get('bucketPrefix', name)}20240501"
        state.update(bucket=bucket, arn=f"arn:aws:s3:::{bucket}")
        return bucket, state
    if typ == "aws:s3/bucketObjectv2:BucketObjectv2":
        # a versioned bucket gives each put a version id; the same content, the same id here
        key = inputs.get("key") or name
        version = hashlib.sha256(f"{inputs.get('bucket')}/{key}".encode()).hexdigest()[:32]
        state.update(key=key, versionId=version, etag=version[:32], id=key)
        return rid or key, state
    if typ == "aws:lambda/layerVersion:LayerVersion":
        layer = f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:{inputs.get('layerName', name)}"
        state.update(layerArn=layer, arn=f"{layer}:1", version="1")
        return rid or f"{layer}:1", state
    if typ == "aws:sqs/queue:Queue":
        qname = inputs.get("name") or f"{name}-abc1234"
        url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{qname}"
        state.update(name=qname, arn=f"arn:aws:sqs:{REGION}:{ACCOUNT}:{qname}", url=url)
        return url, state
    if typ in _ARNS:
        service, kind = _ARNS[typ]
        rname = inputs.get("name") or rid or f"{name}-abc1234"
        head = (f"arn:aws:iam::{ACCOUNT}:" if service == "iam"
                else f"arn:aws:{service}:{REGION}:{ACCOUNT}:")
        state.update(name=rname, arn=head + kind + rname)
        return rid or rname, state
    return rid or f"{name}-id", state


class AwsMocks(pulumi.runtime.Mocks):
    """Answers registrations with :func:`aws_outputs`; counts them in ``count``."""

    def __init__(self) -> None:
        self.count = 0

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.count += 1
        return aws_outputs(args.typ, args.name, dict(args.inputs), args.resource_id or "")

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        try:
            return _CALLS[args.token]
        except KeyError:
            raise KeyError(f"AwsMocks has no answer for the provider function {args.token}") from None
