"""The function's work: Event Hub events holding Event Grid notifications -> engine.

For each BlobCreated event, the handler claims the blob version the event names in the
claims table (:mod:`.idempotency`, through :func:`~runtimes.core.idempotency.process_once`),
streams that version (read by its ETag, so a blob overwritten since the event is not read
twice: the newer version has its own event), runs the engine (processed hub sink, Blob
dead-letter, Table Storage lookups) with a checkpoint after every batch the hub accepted,
and marks the version done. A version already done sends nothing; a retry after a failure
mid-blob resumes after the last checkpoint, so each record reaches the hub once; a version
another invocation holds (a partition that moved to another instance while the first
still runs) raises :class:`~runtimes.core.idempotency.ObjectBusy`, which the retry policy
treats like any transient failure. The claim's lease (``HEADWATER_LEASE_S``) outlasts the
function timeout, so a live invocation is never taken over.

The Event Hub trigger moves its checkpoint on even after the function fails its last
retry, so nothing here may be dropped by raising on the last attempt:

- a body that is not an Event Grid notification, and a blob that cannot be read (gone,
  refused) are *parked*: the notification goes to the dead-letter container for replay
  (:meth:`~.deadletter.BlobDeadLetter.notification`) and the log says where;
- any other failure (a busy blob included) raises while the function's retry policy has
  attempts left (the batch runs again; versions already done are skipped, a version
  failed mid-blob resumes), and is parked on the last attempt;
- if parking itself fails, the invocation raises and the log says the notification may
  be lost with the checkpoint.

Subscription validation events and other event types are acknowledged without work;
blobs outside the pipeline's raw container, account or source prefix/suffix are ignored
(a recursion guard). One structured metrics line per invocation carries the counters.

Everything is built once per worker on the first invocation: clients, the engine and its
chain from the baked manifest (``HEADWATER_MANIFEST`` or ``<artifact root>/
headwater_manifest.json``).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from transforms.contract import Context, SimpleMetrics

from ..core.bootstrap import PipelineSettings, engine_from_manifest
from ..core.engine import Checkpoint, Counters, Engine
from ..core.env import env_json, function_manifest
from ..core.idempotency import ObjectBusy, process_once
from ..core.log import log
from ..core.metrics import ObjectAge, invocation_values
from ..core.once import Once
from ..core.replay import ReplayReport, deadletter_files, mark
from . import clients, events, metrics
from .deadletter import BlobDeadLetter
from .idempotency import TableIdempotency
from .ports import TableLookup, app_setting_secret
from .sink import EventHubSink

__all__ = ["Outcome", "handle"]

DEFAULT_TIMEOUT_S = 600  # the Consumption plan's longest function timeout
LEASE_MARGIN_S = 30


@dataclass
class _Runtime:
    pipeline: str
    engine: Engine
    settings: PipelineSettings
    raw_container: str
    account_url: str
    deadletter: BlobDeadLetter
    idempotency: TableIdempotency | None
    lease_s: float
    stats: dict[str, float] = field(default_factory=dict)
    ages: ObjectAge = field(default_factory=ObjectAge)


@dataclass
class Outcome:
    """What one invocation did (also logged as its metrics line)."""

    counters: Counters
    stats: dict[str, float]
    parked: list[str]


def _build() -> _Runtime:
    manifest, settings = function_manifest()
    name = settings.name
    ctx = Context(pipeline=name, log=logging.getLogger(f"headwater.{name}"))
    tables = env_json("HEADWATER_LOOKUP_TABLES")
    if tables:
        ctx.lookup = TableLookup(clients.table_service(), tables)
    ctx.secret = app_setting_secret()
    blob = clients.blob_service()
    container = blob.get_container_client(
        os.environ.get("HEADWATER_DEADLETTER_CONTAINER") or settings.deadletter_bucket
        or "deadletter")
    prefix = os.environ.get("HEADWATER_DEADLETTER_PREFIX", settings.deadletter_prefix)
    deadletter = BlobDeadLetter(container, prefix)
    engine = engine_from_manifest(
        manifest, sink=lambda s: EventHubSink(clients.producer(), s.sink_batch),
        deadletter=deadletter, ctx=ctx)
    table = os.environ.get("HEADWATER_IDEMPOTENCY_TABLE")
    claims = TableIdempotency(clients.table_service().get_table_client(table), name) \
        if table else None
    lease = os.environ.get("HEADWATER_LEASE_S")
    lease_s = float(lease) if lease else \
        float(os.environ.get("HEADWATER_TIMEOUT_S") or DEFAULT_TIMEOUT_S) + LEASE_MARGIN_S
    return _Runtime(
        pipeline=name, engine=engine, settings=settings,
        raw_container=os.environ.get("HEADWATER_RAW_CONTAINER", "raw"),
        account_url=blob.url.rstrip("/"), deadletter=deadletter, idempotency=claims,
        lease_s=lease_s)


_once: Once[_Runtime] = Once(lambda: _build(), clients.reset)
_state = _once.state  # the worker's runtime, once built
_runtime, _reset, reload = _once.get, _once.reset, _once.reload


def handle(bodies: list[bytes], *, retry_count: int = 0, max_retry_count: int = 0,
           invocation_id: str = "") -> Outcome:
    """Handle the bodies of one invocation's Event Hub events, in order.

    ``retry_count`` / ``max_retry_count`` come from the function's retry context: on the
    last attempt (``retry_count >= max_retry_count``) failures are parked, not raised.
    """
    started = time.perf_counter()
    rt = _runtime()
    rt.engine.ctx.metrics = SimpleMetrics()
    rt.stats = {"Events": 0, "Objects": 0, "Duplicates": 0, "Superseded": 0, "Ignored": 0,
                "Parked": 0}
    rt.ages = ObjectAge()
    final = retry_count >= max_retry_count
    totals = Counters()
    parked: list[str] = []
    seen: set[tuple[str, str, str]] = set()
    try:
        for body in bodies:
            rt.stats["Events"] += 1
            try:
                notes = events.parse_body(body)
            except ValueError as exc:
                parked.append(_park(rt, body, "not an Event Grid notification", exc, None,
                                    invocation_id))
                continue
            for note in notes:
                ref = note.blob
                if ref is None:
                    rt.stats["Ignored"] += 1
                    log("INFO", f"{note.event_type} acknowledged without work",
                        pipeline=rt.pipeline, event_id=note.event_id)
                    continue
                version = (ref.container, ref.name, ref.etag)
                if ref.etag and version in seen:
                    rt.stats["Duplicates"] += 1
                    log("INFO", "same blob version twice in one invocation: handled once",
                        pipeline=rt.pipeline, blob=ref.name, etag=ref.etag)
                    continue
                seen.add(version)
                try:
                    counters = _object(rt, ref)
                except Exception as exc:
                    if not (final or _permanent(exc)):
                        log("WARN" if isinstance(exc, ObjectBusy) else "ERROR",
                            "blob not processed; the function's retry policy runs "
                            "this batch again", exc=exc, pipeline=rt.pipeline,
                            container=ref.container, blob=ref.name, etag=ref.etag,
                            retry_count=retry_count, max_retry_count=max_retry_count,
                            invocation_id=invocation_id)
                        raise
                    parked.append(_park(rt, body, "blob not processed", exc, ref, invocation_id))
                    continue
                if counters is not None:
                    totals.add(counters)
    finally:
        rt.stats["Parked"] = len(parked)
        metrics.emit(rt.pipeline, invocation_values(totals, rt.stats, started,
                                                     rt.engine.ctx.metrics, ages=rt.ages))
    return Outcome(totals, dict(rt.stats), parked)


def _permanent(exc: BaseException) -> bool:
    """Failures another attempt cannot fix: the blob is gone."""
    from azure.core.exceptions import ResourceNotFoundError

    return isinstance(exc, ResourceNotFoundError)


def _park(rt: _Runtime, body: bytes, reason: str, exc: BaseException,
          ref: events.BlobRef | None, invocation_id: str) -> str:
    blob = None if ref is None else {"account_url": ref.account_url, "container": ref.container,
                                     "name": ref.name, "etag": ref.etag}
    try:
        name = rt.deadletter.notification(rt.pipeline, body, reason, exc, blob)
    except Exception as park_exc:
        log("CRITICAL", "notification could not be parked in the dead-letter container; it is "
            "lost when the Event Hub checkpoint moves on: replay it from the hub or the "
            "blob's own copy", exc=park_exc, pipeline=rt.pipeline, reason=reason,
            cause=f"{type(exc).__name__}: {exc}", blob=blob, invocation_id=invocation_id)
        raise
    log("ERROR", f"{reason}: notification parked in the dead-letter container for replay",
        exc=exc, pipeline=rt.pipeline, deadletter_blob=name, blob=blob,
        invocation_id=invocation_id)
    return name


def _object(rt: _Runtime, ref: events.BlobRef) -> Counters | None:
    if (ref.container != rt.raw_container or not rt.settings.wants(ref.name)
            or ref.account_url.rstrip("/") != rt.account_url):
        # never read what the pipeline did not ask for (e.g. its own output)
        rt.stats["Ignored"] += 1
        log("WARN", "blob outside the pipeline's raw container or source prefix/suffix: "
            "ignored", pipeline=rt.pipeline, account=ref.account_url, container=ref.container,
            blob=ref.name, prefix=rt.settings.prefix)
        return None
    rt.ages.saw(ref.created)
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

    client = clients.blob_service().get_blob_client(ref.container, ref.name)
    superseded: list[bool] = []

    def work(resume: Checkpoint | None, checkpoint: Any) -> Counters:
        try:
            stream = (client.download_blob(etag=ref.etag,
                                           match_condition=MatchConditions.IfNotModified)
                      if ref.etag else client.download_blob())
        except ResourceModifiedError:
            if not client.exists():  # some services answer 412, not 404, for a deleted blob
                raise ResourceNotFoundError(f"blob {ref.container}/{ref.name} no longer "
                                            "exists") from None
            superseded.append(True)
            return Counters()
        return rt.engine.process_object(stream, ref.name, ref.container, ref.etag or None,
                                        resume=resume, checkpoint=checkpoint)

    where = {"pipeline": rt.pipeline, "container": ref.container, "blob": ref.name,
             "etag": ref.etag}
    # without an ETag there is no version to claim: the blob is read as it is now
    store = rt.idempotency if ref.etag else None
    counters = process_once(store, TableIdempotency.key(ref.container, ref.name, ref.etag),
                            rt.lease_s, work, what=f"{ref.container}/{ref.name}#{ref.etag}",
                            stats=rt.stats, **where)
    if counters is None:  # done before: nothing written
        return None
    if superseded:
        rt.stats["Superseded"] += 1
        log("INFO", "blob overwritten since this event: its newer version has its own event",
            **where)
        return None
    rt.stats["Objects"] += 1
    return counters


def replay_parked(report: ReplayReport, *, since: str | None = None,
                  dry_run: bool = False) -> ReplayReport:
    """Run the pipeline's parked notifications again (``headwater replay`` on Azure).

    Each one's event body goes through :func:`handle` as a last attempt: its blob is
    processed (resuming after its claim's checkpoint), or the notification is parked anew
    with its new error. The parked file is then moved under ``_replayed/``, so it is never
    run twice; a failure to park raises and leaves the file where it was.
    """
    rt = _runtime()
    store = rt.deadletter.store()
    prefix = rt.deadletter.prefix + "notifications/"
    for name in deadletter_files(store, prefix, rt.pipeline, since, suffix=".json"):
        doc = orjson.loads(store.read(name))
        report.files.append(name)
        report.entries += 1
        if dry_run:
            report.redriven += 1
            continue
        outcome = handle([str(doc.get("body") or "").encode()],
                         invocation_id=f"replay:{name}")
        report.redriven += 1
        report.counters.add(outcome.counters)
        for again in outcome.parked:
            report.kept.append((name, f"parked again as {again}"))
        mark(store, prefix, rt.pipeline, name)
    return report
