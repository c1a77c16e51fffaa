"""Every pipeline of ``Pulumi.aws.yaml`` end to end on moto, with the environment the
component renders, not one written here.

The Pulumi program runs offline under the AWS mocks (``headwater plan``'s way); each
function's settings (the stack output ``function_settings``, equal to the Lambda's
environment) name the resources, which are then created on the moto server under exactly
those names: the raw bucket with its S3 -> SQS notification, the curated bucket (which also
takes the dead-letters), the Firehose stream into it, the lookup tables, the idempotency
table and the Secrets Manager secret. An object under the pipeline's prefix then goes
through the handler as SQS hands it the notification; a second delivery writes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from e2e.aws.conftest import REGION, USERS, FakeContext, Stack, _table, aws  # noqa: F401

from headwater.manifest import build_manifest
from headwater.spec import load_stack_file
from headwater.testing.program import plan_stack
from runtimes.aws import handler

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[3]
STACK = load_stack_file(ROOT / "Pulumi.aws.yaml")
SECRET = "k3y-for-the-test"

ORDERS = b"".join(orjson.dumps(r) + b"\n" for r in [
    {"order_id": "1", "user_id": "u1", "value": 19.99, "category": " books ",
     "ts": "2024-05-01T10:00:00Z"},
    {"order_id": "2", "user_id": "u2", "value": "abc", "category": "toys",
     "ts": "2024-05-01T10:00:00Z"},
    {"order_id": "3", "user_id": "u404", "value": 1, "category": "food",
     "ts": "2024-05-01T10:00:00Z"},
])
SIGNUPS = (b"email,country,plan\n"
           b"ada@example.com,FR,pro\n"
           b",DE,free\n"                      # no email: `require` dead-letters it
           b"bob@example.com,XX,free\n")      # a code the plugin does not know
EXPECTED = {
    "orders": ([{"order_id": "1", "user_id": "u1", "value_cents": 1999, "category": "BOOKS",
                 "ts": "2024-05-01T10:00:00Z", "tier": "gold", "country": "FR"}],
               [("1:cents", "ValueError"), ("3:enrich", "LookupError")]),
    "signups": None,  # filled in by the test from the plugin's own answer for XX
}


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory, example_plugin_dir: Path) -> Any:
    import sys

    from transforms.registry import default_registry

    folder = tmp_path_factory.mktemp("artifact")
    sys.path.insert(0, str(example_plugin_dir))
    default_registry.cache_clear()
    try:
        return plan_stack("aws", folder, ROOT)
    finally:
        sys.path.remove(str(example_plugin_dir))
        default_registry.cache_clear()


def _deploy(graph: Any, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
            ) -> dict[str, str]:
    """Create the pipeline's resources under their rendered names; set its environment."""
    settings = graph.outputs["function_settings"][name]
    spec = STACK.pipeline(name)
    s3, sqs, ddb = (boto3.client(s, region_name=REGION) for s in ("s3", "sqs", "dynamodb"))
    raw, curated = graph.outputs["raw_buckets"][name], graph.outputs["curated_buckets"][name]
    assert settings["HEADWATER_DEADLETTER_BUCKET"] == curated  # dead-letters beside the data
    for bucket in (raw, curated):
        s3.create_bucket(Bucket=bucket)
    queue = sqs.create_queue(QueueName=f"{name}-queue")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket=raw, NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"], "Filter": {
            "Key": {"FilterRules": [{"Name": "prefix", "Value": spec.source.prefix}]}}}]})
    boto3.client("firehose", region_name=REGION).create_delivery_stream(
        DeliveryStreamName=settings["HEADWATER_STREAM"], DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": f"arn:aws:s3:::{curated}", "Prefix": f"{spec.sink.table}/"})
    keys = json.loads(settings["HEADWATER_LOOKUP_KEYS"])
    for logical, table in json.loads(settings["HEADWATER_LOOKUP_TABLES"]).items():
        _table(ddb, table, keys[logical])
        for row in USERS:
            ddb.put_item(TableName=table, Item={
                k: {"N": str(v)} if isinstance(v, int) else {"S": v} for k, v in row.items()})
    _table(ddb, settings["HEADWATER_IDEMPOTENCY_TABLE"], "pk")
    for ref in json.loads(settings["HEADWATER_SECRETS"]).values():
        boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name=ref, SecretString=SECRET)
    manifest = tmp_path / "headwater_manifest.json"
    manifest.write_text(json.dumps(build_manifest(spec)), encoding="utf-8")
    for key, value in {**settings, "HEADWATER_MANIFEST": str(manifest)}.items():
        monkeypatch.setenv(key, value)
    handler._reset()
    return {"raw": raw, "curated": curated, "queue": queue, "queue_arn": arn}


def _event(sqs: Any, where: dict[str, str]) -> dict[str, Any]:
    """What SQS hands the function for the notifications waiting (S3's test event aside)."""
    st = Stack(spec=None, manifest_path=Path(), sqs=sqs, queue_url=where["queue"],
               queue_arn=where["queue_arn"])
    return st.event([m for m in st.receive() if "s3:TestEvent" not in m["Body"]])


def _read(s3: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    out = []
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        out.extend(orjson.loads(x) for x in body.splitlines() if x.strip())
    return out


@pytest.mark.parametrize("name", [p.name for p in STACK.pipelines])
def test_every_example_pipeline_runs_with_its_rendered_environment(
        name, graph, aws, example_plugin, tmp_path, monkeypatch):  # noqa: F811
    spec = STACK.pipeline(name)
    where = _deploy(graph, name, tmp_path, monkeypatch)
    s3, sqs = boto3.client("s3", region_name=REGION), boto3.client("sqs", region_name=REGION)
    key = spec.source.prefix + ("2024/05/01/day.csv" if name == "signups" else
                                "2024/05/01/day.ndjson")
    s3.put_object(Bucket=where["raw"], Key=key, Body=SIGNUPS if name == "signups" else ORDERS)
    event = _event(sqs, where)
    assert len(event["Records"]) == 1
    assert handler.handler(event, FakeContext(120_000)) == {"batchItemFailures": []}

    rows = sorted(({k: v for k, v in r.items() if k != "_headwater_id"}
                   for r in _read(s3, where["curated"], f"{spec.sink.table}/")),
                  key=lambda r: json.dumps(r, sort_keys=True))
    dead = _read(s3, where["curated"], spec.deadletter.prefix)
    if name == "signups":
        from headwater_geo import make as country_name  # the plugin's own answer for XX

        def hashed(email: str) -> str:
            return hmac.new(SECRET.encode(), email.encode(), hashlib.sha256).hexdigest()

        name_of = country_name()
        want = [name_of({"email": hashed("ada@example.com"), "country": "FR", "plan": "pro"},
                        None)]
        steps = [("0:require", "ValueError")]
        try:
            want.append(name_of({"email": hashed("bob@example.com"), "country": "XX",
                                 "plan": "free"}, None))
        except ValueError:
            steps.append(("2:country_name", "ValueError"))
        assert want[0]["country_name"] == "France"
        assert "ada@example.com" not in json.dumps(rows)
    else:
        want, steps = EXPECTED[name]
    assert rows == sorted(want, key=lambda r: json.dumps(r, sort_keys=True))
    assert sorted((e["step"], e["error_type"]) for e in dead) == sorted(steps)

    handler._reset()  # a cold container; the same notification again writes nothing
    for m in event["Records"]:
        sqs.change_message_visibility(QueueUrl=where["queue"],
                                      ReceiptHandle=m["receiptHandle"], VisibilityTimeout=0)
    again = _event(sqs, where)
    assert handler.handler(again, FakeContext(120_000)) == {"batchItemFailures": []}
    assert len(_read(s3, where["curated"], f"{spec.sink.table}/")) == len(rows)
