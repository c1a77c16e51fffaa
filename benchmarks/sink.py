"""Figure 7: Firehose ``PutRecordBatch`` calls made by the engine and the real sink.

The sink is ``runtimes.aws.sink.FirehoseSink`` with a real boto3 client against a moto
server started here on 127.0.0.1 (S3 destination), driven by the engine. For the partial
failure run, a thin wrapper around that client answers the way Firehose does under
throttling: ~5 % of the entries of a call come back with ``ErrorCode``
``ServiceUnavailableException`` (each entry fails once, then goes through) while the
others are passed on to moto; the engine retries exactly the failed entries.
"""

from __future__ import annotations

import math
import random
import time
from typing import Any

from . import data
from ._common import Config, Figure, Target

STREAM = "orders"


class FlakyFirehose:
    """Fails ``p`` of the entries of each call once (by content), forwards the rest."""

    def __init__(self, client: Any, p: float, seed: int = 3) -> None:
        self.client = client
        self.p = p
        self.rng = random.Random(seed)
        self.failed: set[bytes] = set()
        self.calls = 0
        self.entries = 0
        self.injected = 0

    def put_record_batch(self, DeliveryStreamName: str, Records: list[dict]) -> dict:  # noqa: N803
        self.calls += 1
        self.entries += len(Records)
        passed, answers = [], []
        for rec in Records:
            if rec["Data"] not in self.failed and self.rng.random() < self.p:
                self.failed.add(rec["Data"])
                self.injected += 1
                answers.append({"ErrorCode": "ServiceUnavailableException",
                                "ErrorMessage": "Slow down."})
            else:
                passed.append(rec)
                answers.append({"RecordId": "pending"})
        if passed:
            resp = self.client.put_record_batch(DeliveryStreamName=DeliveryStreamName,
                                                Records=passed)
            ids = iter(r.get("RecordId") for r in resp["RequestResponses"])
            for a in answers:
                if "RecordId" in a:
                    a["RecordId"] = next(ids)
        failed = sum("ErrorCode" in a for a in answers)
        return {"FailedPutCount": failed, "Encrypted": False, "RequestResponses": answers}


def _delivered(s3: Any) -> int:
    n = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="curated"):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket="curated", Key=obj["Key"])["Body"].read()
            n += sum(1 for line in body.splitlines() if line.strip())
    return n


def figure_sink(cfg: Config) -> Figure:
    import boto3

    from headwater.testing import moto_server
    from headwater.testing.doubles import MemoryDeadLetter
    from runtimes.aws.sink import FirehoseSink
    from runtimes.core.engine import Engine, RetryPolicy, Step

    n = cfg.sink_records
    fig = Figure(7, f"Sink calls: Firehose PutRecordBatch for {n:,} records "
                    "(engine + FirehoseSink + boto3 against moto)")
    fig.headers = ["run", "PutRecordBatch calls", "expected", "entries sent", "records "
                   "delivered to S3", "dead-lettered", "retried", "wall (s)"]
    with moto_server() as url:
        session = boto3.session.Session(aws_access_key_id="testing",
                                        aws_secret_access_key="testing",
                                        region_name="us-east-1")
        s3 = session.client("s3", endpoint_url=url)
        firehose = session.client("firehose", endpoint_url=url)
        for p in (0.0, 0.05):
            s3.create_bucket(Bucket="curated")
            firehose.create_delivery_stream(
                DeliveryStreamName=STREAM, DeliveryStreamType="DirectPut",
                ExtendedS3DestinationConfiguration={
                    "RoleARN": "arn:aws:iam::123456789012:role/firehose",
                    "BucketARN": "arn:aws:s3:::curated", "Prefix": "orders/"})
            flaky = FlakyFirehose(firehose, p)
            sink = FirehoseSink(flaky, STREAM)
            dl = MemoryDeadLetter()
            engine = Engine("orders", [Step.of(0, "pass", lambda r, ctx: r)], sink, dl,
                            retry=RetryPolicy(base_s=0.01, cap_s=0.1))
            t0 = time.perf_counter()
            c = engine.process_records(data.records(n))
            wall = time.perf_counter() - t0
            delivered = _delivered(s3)
            first = math.ceil(n / 500)
            if p:
                label = f"{p:.0%} of entries fail once ({flaky.injected} injected)"
                # a failed subset is retried per batch of 500: one more call per batch hit
                expected = f"{first} + one retry call per batch with failures (<= {2 * first})"
                ok = (flaky.calls <= 2 * first and delivered == n and c.dead_lettered == 0)
                fig.targets.append(Target("5 % failing once: every record delivered, only the "
                                          "failed entries resent", ok,
                                          f"{flaky.calls} calls, {flaky.entries - n} entries "
                                          f"resent for {flaky.injected} failures, "
                                          f"{delivered:,} delivered"))
            else:
                label = "no failures"
                expected = f"ceil({n}/500) = {first}"
                ok = flaky.calls == first and delivered == n
                fig.targets.append(Target(f"no failures: ceil({n}/500) calls", ok,
                                          f"{flaky.calls} calls, {delivered:,} delivered"))
            fig.rows.append([label, str(flaky.calls), expected, f"{flaky.entries:,}",
                             f"{delivered:,}", str(c.dead_lettered), str(c.retries),
                             f"{wall:.2f}"])
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket="curated"):
                for obj in page.get("Contents", []):
                    s3.delete_object(Bucket="curated", Key=obj["Key"])
            s3.delete_bucket(Bucket="curated")
            firehose.delete_delivery_stream(DeliveryStreamName=STREAM)
    return fig
