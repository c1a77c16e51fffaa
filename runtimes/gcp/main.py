"""The Cloud Functions entry point: ``handle`` (``main.handle`` at the artifact root).

An HTTP function, because headwater's own push subscription (with its dead-letter
policy) posts plain Pub/Sub push JSON to it; CloudEvents from an Eventarc trigger
(Pub/Sub or storage) are accepted too. Each request names one object version:

- not ``OBJECT_FINALIZE`` (a delete, a metadata update): acknowledged without work;
- outside the pipeline's source prefix/suffix: acknowledged without work (recursion guard);
- otherwise the object's *generation* named by the notification is streamed from GCS
  into the engine (BigQuery sink, GCS dead-letter, Firestore lookups, Secret Manager);
  a generation that no longer exists (overwritten in a bucket without versioning) is
  acknowledged with a warning, never read as the latest bytes: the newer generation has
  its own notification.

With ``HEADWATER_IDEMPOTENCY_COLLECTION`` set (the component sets it), each object
generation is claimed in Firestore first (:mod:`.idempotency`): a generation already done
is acknowledged without work, one another request is working on is answered 409 (Pub/Sub
retries later), and a redelivery after a failure resumes after the last batch the failed
attempt settled. The lease lasts the function's timeout (``HEADWATER_TIMEOUT_S``) and a
margin.

Status: 204 when the object is handled (every record written or dead-lettered); 500 when
it is not (a store down, the dead-letter not writable), so Pub/Sub redelivers with
backoff and, after the subscription's attempts, moves the message to the dead-letter
topic; 409 while another request holds the object; 400 for a request that is no
notification (it, too, ends on the dead-letter topic). Rows carry stable insert ids, so a
redelivery does not duplicate what was written even without the idempotency collection.

The engine, its chain (from the baked manifest, ``HEADWATER_MANIFEST`` or
``<artifact root>/headwater_manifest.json``) and the clients are built once per instance.
"""

from __future__ import annotations

import io
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from transforms.contract import Context, SimpleMetrics

from ..core.bootstrap import PipelineSettings, engine_from_manifest
from ..core.engine import Checkpoint, Counters, Engine
from ..core.env import env_json, function_manifest, required_env
from ..core.idempotency import ObjectBusy, process_once
from ..core.log import log
from ..core.metrics import ObjectAge, invocation_values
from ..core.once import Once
from . import clients, events, metrics
from .deadletter import GcsDeadLetter
from .idempotency import FirestoreIdempotency
from .ports import FirestoreLookup, SecretStore
from .sink import BigQuerySink

__all__ = ["handle", "handle_notification"]

READ_CHUNK = 8 * 1024 * 1024
READ_TIMEOUT_S = 30.0
DEFAULT_TIMEOUT_S = 3600  # the longest an HTTP Cloud Function (gen2) may run
LEASE_MARGIN_S = 30


@dataclass
class _Runtime:
    pipeline: str
    engine: Engine
    settings: PipelineSettings
    idempotency: FirestoreIdempotency | None = None
    lease_s: float = DEFAULT_TIMEOUT_S + LEASE_MARGIN_S


def _build() -> _Runtime:
    manifest, settings = function_manifest()
    name = settings.name
    project = clients.project()
    table = ".".join([*( [project] if project else []), required_env("HEADWATER_DATASET"),
                      os.environ.get("HEADWATER_TABLE") or settings.table])
    ctx = Context(pipeline=name, log=logging.getLogger(f"headwater.{name}"))
    collections = env_json("HEADWATER_LOOKUP_COLLECTIONS")
    if collections:
        ctx.lookup = FirestoreLookup(
            clients.firestore(os.environ.get("HEADWATER_FIRESTORE_DATABASE")), collections)
    secret_ids = env_json("HEADWATER_SECRETS")
    if secret_ids:
        ctx.secret = SecretStore(clients.secrets(), secret_ids, project)
    engine = engine_from_manifest(
        manifest,
        sink=lambda s: BigQuerySink(clients.bigquery(), table, s.sink_batch),
        deadletter=GcsDeadLetter(
            clients.storage(),
            os.environ.get("HEADWATER_DEADLETTER_BUCKET") or settings.deadletter_bucket or "",
            os.environ.get("HEADWATER_DEADLETTER_PREFIX", settings.deadletter_prefix)),
        ctx=ctx,
    )
    collection = os.environ.get("HEADWATER_IDEMPOTENCY_COLLECTION")
    idempotency = FirestoreIdempotency(
        clients.firestore(os.environ.get("HEADWATER_STATE_DATABASE")),
        collection) if collection else None
    timeout = int(os.environ.get("HEADWATER_TIMEOUT_S") or DEFAULT_TIMEOUT_S)
    return _Runtime(name, engine, settings, idempotency, timeout + LEASE_MARGIN_S)


_once: Once[_Runtime] = Once(lambda: _build(), clients.reset)
_state = _once.state  # the instance's runtime, once built
_runtime, _reset, reload = _once.get, _once.reset, _once.reload


def handle(request: Any) -> tuple[str, int]:
    """The functions-framework HTTP entry point (a Flask request)."""
    try:
        note = events.parse_request(dict(request.headers), request.get_data())
    except ValueError as exc:
        log("ERROR", "request is not a GCS notification; Pub/Sub will retry, then "
            "dead-letter it", error_type="ValueError", error=str(exc))
        return f"not a GCS notification: {exc}\n", 400
    trace = (events.trace_fields(dict(request.headers), clients.project())
             if os.environ.get("HEADWATER_TRACING", "1") != "0" else {})
    try:
        handle_notification(note, trace)
    except ObjectBusy as exc:
        log("WARNING", "object held by another request; Pub/Sub will redeliver the "
            "notification", pipeline=_state[0].pipeline if _state else "",
            messageId=note.message_id, bucket=note.object.bucket, object=note.object.name,
            generation=note.object.generation, deliveryAttempt=note.delivery_attempt, **trace)
        return f"{exc}\n", 409
    except Exception as exc:
        log("ERROR", "object not processed; Pub/Sub will redeliver the notification",
            pipeline=_state[0].pipeline if _state else "", messageId=note.message_id,
            bucket=note.object.bucket, object=note.object.name,
            generation=note.object.generation, deliveryAttempt=note.delivery_attempt, exc=exc,
            **trace)
        return f"{type(exc).__name__}: {exc}\n", 500
    return "", 204


def handle_notification(note: events.Notification,
                        trace: dict[str, str] | None = None) -> Counters | None:
    """Handle one notification; raises when the object could not be handled. ``trace``:
    Cloud Trace log fields (:func:`.events.trace_fields`) put on every line about it, so
    the request's trace lists its object's logs, key included."""
    started = time.perf_counter()
    rt = _runtime()
    ref = note.object
    where = {"pipeline": rt.pipeline, "messageId": note.message_id, "bucket": ref.bucket,
             "object": ref.name, "generation": ref.generation, **(trace or {})}
    if not note.finalized:
        log("INFO", "not an OBJECT_FINALIZE notification: ignored", event=note.event_type,
            **where)
        return None
    if not rt.settings.wants(ref.name):
        # never read what the pipeline did not ask for (e.g. its own output)
        log("WARNING", "object outside the pipeline's source prefix/suffix: ignored",
            prefix=rt.settings.prefix, **where)
        return None
    rt.engine.ctx.metrics = SimpleMetrics()  # per-request transform metrics
    gone: list[bool] = []

    def work(resume: Checkpoint | None, checkpoint: Any) -> Counters:
        counters = _process(rt, ref, resume, checkpoint)
        if counters is None:
            gone.append(True)
            return Counters()
        return counters

    key = FirestoreIdempotency.key(ref.bucket, ref.name, ref.generation)
    counters = process_once(rt.idempotency, key, rt.lease_s, work,
                            what=f"gs://{ref.bucket}/{ref.name}#{ref.generation}", **where)
    if counters is None:  # done before: nothing to count
        return None
    if gone:
        log("WARNING", "the notified object generation is not there any more (overwritten or "
            "deleted before it was read): nothing read; a newer generation has its own "
            "notification",
            **where)
        return None
    ages = ObjectAge()
    ages.saw(ref.created)
    values = invocation_values(counters, {"Objects": 1}, started, rt.engine.ctx.metrics,
                               ages=ages)
    metrics.emit(rt.pipeline, values, **{k: v for k, v in where.items() if k != "pipeline"})
    return counters


def _process(rt: _Runtime, ref: events.ObjectRef, resume: Checkpoint | None = None,
             checkpoint: Any = None) -> Counters | None:
    """Stream the notified generation into the engine; None when that generation is gone.

    The metadata read first tells a gone generation apart from every later NotFound (a
    missing dead-letter bucket), which must fail the request, not acknowledge it. Its
    answer (size, media link of that generation) is what the reader then uses; an answer
    for another generation is never read: those bytes have their own notification."""
    from google.api_core.exceptions import NotFound

    generation = int(ref.generation) if ref.generation else None
    blob = clients.storage().bucket(ref.bucket).blob(ref.name, generation=generation)
    try:
        blob.reload(timeout=READ_TIMEOUT_S)
    except NotFound:
        return None
    if generation is not None and blob.generation != generation:
        return None
    if blob.size == 0:  # a folder placeholder or an empty file: nothing to download
        return rt.engine.process_object(io.BytesIO(b""), ref.name, ref.bucket,
                                        version=ref.generation)
    with blob.open("rb", chunk_size=READ_CHUNK, timeout=READ_TIMEOUT_S) as stream:
        return rt.engine.process_object(stream, ref.name, ref.bucket, version=ref.generation,
                                        resume=resume, checkpoint=checkpoint)
