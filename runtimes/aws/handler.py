"""The Lambda entry point: ``runtimes.aws.handler.handler``.

An SQS event source (ReportBatchItemFailures) delivers messages whose bodies are S3
notifications. For each object named, the handler claims it in the idempotency table,
streams it from S3 into the engine (Firehose sink, S3 dead-letter, DynamoDB lookups) and
marks it done. It returns ``batchItemFailures`` holding exactly the messages whose objects
could not be handled, so SQS redelivers those and deletes the rest.

- ``s3:TestEvent`` messages and non-create events are acknowledged without work.
- A message whose body is not an S3 notification fails alone (it reaches the DLQ after
  ``maxReceiveCount``); a malformed *event* raises ``ValueError``.
- Before each object, if ``context.get_remaining_time_in_millis()`` is below
  ``HEADWATER_MIN_REMAINING_MS``, that message and every later one are reported failed
  instead of being started: the function never times out in the middle of a write.
- Objects outside the pipeline's source prefix/suffix are ignored (a recursion guard).
- One CloudWatch EMF line per invocation carries the counters.

Everything is built once per container on the first invocation: clients, the engine and
its chain from the baked manifest (``HEADWATER_MANIFEST`` or
``<artifact root>/headwater_manifest.json``).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from transforms.contract import Context, SimpleMetrics

from ..core.bootstrap import PipelineSettings, engine_from_manifest
from ..core.engine import Checkpoint, Counters, Engine
from ..core.env import env_json, function_manifest
from ..core.idempotency import ObjectBusy, process_once
from ..core.log import log as _log
from ..core.manifest import ManifestError
from ..core.metrics import ObjectAge, invocation_values
from ..core.once import Once
from . import clients, events, metrics, tracing
from .deadletter import S3DeadLetter
from .idempotency import Idempotency
from .ports import DynamoLookup, SecretStore
from .sink import FirehoseSink

__all__ = ["ObjectBusy", "handler"]

DEFAULT_MIN_REMAINING_MS = 10_000
NO_CONTEXT_LEASE_S = 900  # the longest a Lambda invocation can run


@dataclass
class _Runtime:
    pipeline: str
    engine: Engine
    settings: PipelineSettings
    idempotency: Idempotency | None
    min_remaining_ms: int
    stats: dict[str, float] = field(default_factory=dict)
    ages: ObjectAge = field(default_factory=ObjectAge)


def _build() -> _Runtime:
    manifest, settings = function_manifest()
    name = settings.name
    stream = os.environ.get("HEADWATER_STREAM")
    if not stream:
        raise ManifestError("HEADWATER_STREAM (the Firehose delivery stream) is not set")
    ctx = Context(pipeline=name, log=logging.getLogger(f"headwater.{name}"))
    tables = env_json("HEADWATER_LOOKUP_TABLES")
    if tables:
        ctx.lookup = DynamoLookup(clients.client("dynamodb"), tables,
                                  env_json("HEADWATER_LOOKUP_KEYS"))
    secrets = env_json("HEADWATER_SECRETS")
    if secrets:
        ctx.secret = SecretStore(clients.client("secretsmanager"), secrets)
    engine = engine_from_manifest(
        manifest,
        sink=lambda s: FirehoseSink(clients.client("firehose"), stream, s.sink_batch),
        deadletter=S3DeadLetter(
            clients.client("s3"),
            os.environ.get("HEADWATER_DEADLETTER_BUCKET") or settings.deadletter_bucket or "",
            os.environ.get("HEADWATER_DEADLETTER_PREFIX", settings.deadletter_prefix),
            os.environ.get("HEADWATER_DEADLETTER_KMS_KEY"),
        ),
        ctx=ctx,
    )
    table = os.environ.get("HEADWATER_IDEMPOTENCY_TABLE")
    return _Runtime(
        pipeline=name,
        engine=engine,
        settings=settings,
        idempotency=Idempotency(clients.client("dynamodb"), table) if table else None,
        min_remaining_ms=int(os.environ.get("HEADWATER_MIN_REMAINING_MS",
                                            DEFAULT_MIN_REMAINING_MS)),
    )


_once: Once[_Runtime] = Once(lambda: _build(), clients.reset)
_state = _once.state  # the container's runtime, once built
_runtime, _reset, reload = _once.get, _once.reset, _once.reload


def _remaining_ms(context: Any) -> float | None:
    get = getattr(context, "get_remaining_time_in_millis", None)
    return float(get()) if get is not None else None


def handler(event: Any, context: Any) -> dict[str, list[dict[str, str]]]:
    started = time.perf_counter()
    rt = _runtime()
    rt.engine.ctx.metrics = SimpleMetrics()  # per-invocation transform metrics
    rt.stats = {"Objects": 0, "Duplicates": 0, "Superseded": 0, "FailedMessages": 0}
    rt.ages = ObjectAge()
    totals = Counters()
    failed: list[str] = []
    try:
        messages = events.parse_event(event)
        for n, msg in enumerate(messages):
            outcome = _message(rt, msg, context, totals)
            if outcome == "late":
                failed.extend(m.message_id for m in messages[n:])
                _log("WARN", "time budget reached: reporting the remaining messages as failed",
                     pipeline=rt.pipeline, messages=len(messages) - n,
                     remaining_ms=_remaining_ms(context), min_remaining_ms=rt.min_remaining_ms)
                break
            if outcome == "failed":
                failed.append(msg.message_id)
    finally:
        rt.stats["FailedMessages"] = len(failed)
        metrics.emit(rt.pipeline, invocation_values(totals, rt.stats, started,
                                                     rt.engine.ctx.metrics, ages=rt.ages))
    return {"batchItemFailures": [{"itemIdentifier": i} for i in failed]}


def _message(rt: _Runtime, msg: events.SqsMessage, context: Any, totals: Counters) -> str:
    """Handle one SQS message: ``"ok"``, ``"failed"`` or ``"late"`` (time budget hit)."""
    try:
        note = events.parse_body(msg.body)
    except ValueError as exc:
        _log("ERROR", "message is not an S3 notification", pipeline=rt.pipeline,
             messageId=msg.message_id, error_type="ValueError", error=str(exc))
        return "failed"
    if note.test:
        _log("INFO", "s3:TestEvent acknowledged", pipeline=rt.pipeline, messageId=msg.message_id)
        return "ok"
    for ref in note.objects:
        remaining = _remaining_ms(context)
        if remaining is not None and remaining < rt.min_remaining_ms:
            return "late"
        try:
            counters = _object(rt, ref, remaining)
        except Exception as exc:
            _log("ERROR", "object not processed; SQS will redeliver the message",
                 pipeline=rt.pipeline, messageId=msg.message_id, bucket=ref.bucket,
                 key=ref.key, etag=ref.etag, receiveCount=msg.receive_count, exc=exc)
            return "failed"
        if counters is not None:
            totals.add(counters)
    return "ok"


def _object(rt: _Runtime, ref: events.ObjectRef, remaining_ms: float | None) -> Counters | None:
    if not ref.created:
        _log("INFO", "not an object-created event: ignored", pipeline=rt.pipeline,
             bucket=ref.bucket, key=ref.key, event=ref.event_name)
        return None
    if not rt.settings.wants(ref.key):
        # never read what the pipeline did not ask for (e.g. its own output)
        _log("WARN", "object outside the pipeline's source prefix/suffix: ignored",
             pipeline=rt.pipeline, bucket=ref.bucket, key=ref.key, prefix=rt.settings.prefix)
        return None
    rt.ages.saw(ref.event_time)
    lease = NO_CONTEXT_LEASE_S if remaining_ms is None else remaining_ms / 1000 + 30

    def work(resume: Checkpoint | None, checkpoint: Any) -> Counters:
        body = _read(ref)
        if body is None:  # a newer version replaced it; that version's notification comes
            rt.stats["Superseded"] += 1
            _log("INFO", "object was overwritten before it was read: this version is gone, "
                 "the newer one has its own notification", pipeline=rt.pipeline,
                 bucket=ref.bucket, key=ref.key, etag=ref.etag)
            return Counters()
        try:
            return rt.engine.process_object(
                body, ref.key, ref.bucket, ref.version_id or ref.etag or None,
                resume=resume, checkpoint=checkpoint)
        finally:
            body.close()

    begun, failure = time.time(), None
    try:
        counters = process_once(
            rt.idempotency, Idempotency.key(ref.bucket, ref.key, ref.etag), lease, work,
            what=f"s3://{ref.bucket}/{ref.key}", stats=rt.stats, pipeline=rt.pipeline,
            bucket=ref.bucket, key=ref.key, etag=ref.etag)
    except Exception as exc:
        failure = exc
        raise
    finally:  # the object's X-Ray subsegment, searchable by annotation.object_key
        tracing.send_subsegment(pipeline=rt.pipeline, bucket=ref.bucket, key=ref.key,
                                start=begun, end=time.time(), error=failure)
    if counters is not None:
        rt.stats["Objects"] += 1
    return counters


def _read(ref: events.ObjectRef) -> Any:
    """The body of exactly the version the notification names: by version id where the
    bucket is versioned, else on condition that the ETag still matches. None when that
    version is gone (overwritten: S3 answers 412 to a stale ``IfMatch``)."""
    request = {"Bucket": ref.bucket, "Key": ref.key}
    if ref.version_id:
        request["VersionId"] = ref.version_id
    elif ref.etag:
        request["IfMatch"] = ref.etag
    try:
        return clients.client("s3").get_object(**request)["Body"]
    except ClientError as exc:
        if clients.error_code(exc) in ("PreconditionFailed", "412"):
            return None
        raise
