"""Each source object version is processed once, however often the platform delivers its
notification: the claim/lease state machine every cloud's store follows, and the one
place that drives it (:func:`process_once`).

One record per object version in a cloud store (a DynamoDB item, a Firestore document):

- before processing, a *claim* makes it ``IN_PROGRESS`` with a fresh lease token and a
  lease end (``lease_until``); it succeeds only if there is no record, the old one has
  expired (``expires_at``), or it is not ``DONE`` and its lease has ended
  (:func:`claimable`), so two invocations never work on one object at the same time;
- while processing, after every batch the sink settled, a *checkpoint* records
  ``{"outputs", "entries"}`` (only while the lease is still ours); a redelivery that takes
  the object over resumes after it, so a failure mid-object writes nothing twice;
- after processing, *complete* makes it ``DONE`` with the counts and a long expiry: a
  redelivered notification finds it and writes nothing;
- when processing fails, *release* ends the lease (``FAILED``) and keeps the checkpoint,
  so the redelivery can take the object at once and resume.

A claim held by an invocation that died (timeout, out of memory) is taken over when its
lease ends. ``expires_at`` is the store's TTL field, so old records go by themselves; a
claim keeps the long expiry too, so a failed attempt's checkpoint survives as long as the
platform may redeliver.

Each store is thin: its claim writes atomically in the store's own way (a DynamoDB
condition expression equal to :func:`claimable`, a Firestore precondition) and exposes
:class:`ClaimStore`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from .engine import Checkpoint, Counters
from .log import log

__all__ = ["BUSY", "DONE", "DONE_TTL_S", "GO", "ClaimStore", "ObjectBusy", "claimable",
           "process_once"]

GO, DONE, BUSY = "go", "done", "busy"
IN_PROGRESS, COMPLETED, FAILED = "IN_PROGRESS", "DONE", "FAILED"
DONE_TTL_S = 14 * 24 * 3600  # SQS keeps a message at most 14 days, Pub/Sub 7


class ObjectBusy(RuntimeError):
    """Another invocation holds a live claim on the object: let the platform redeliver
    later."""


def claimable(status: str | None, lease_until: float | None, expires_at: float | None,
              now: float) -> bool:
    """Whether a claim may take a record in this state (no record: ``status`` None)."""
    if status is None:
        return True
    if expires_at is not None and expires_at < now:
        return True
    return status != COMPLETED and (lease_until is None or lease_until < now)


def refusal(status: str | None) -> str:
    """What a claim that may not take the record tells the caller."""
    return DONE if status == COMPLETED else BUSY


class ClaimStore(Protocol):
    """A cloud's record of object versions (see the module docstring)."""

    @property
    def resume_from(self) -> dict[str, int] | None:
        """The checkpoint the last ``GO`` claim found, or None."""

    def claim(self, key: str, lease_s: float) -> tuple[str, str | None]:
        """``(GO, token)`` when the caller owns ``key`` now (then :attr:`resume_from` is
        the checkpoint an earlier attempt left, or None), else ``(DONE|BUSY, None)``."""

    def checkpoint(self, key: str, token: str, progress: Mapping[str, int]) -> None: ...

    def complete(self, key: str, token: str, counts: Mapping[str, float]) -> None: ...

    def release(self, key: str, token: str) -> None:
        """End our claim (only ours), keeping its checkpoint; no error if it is not ours."""


def process_once(store: ClaimStore | None, record: str, lease_s: float,
                 work: Callable[[Checkpoint | None, Callable[[Checkpoint], None] | None],
                                Counters],
                 /, *, what: str, stats: dict[str, float] | None = None,
                 **where: Any) -> Counters | None:
    """Run ``work(resume, checkpoint)`` for one object version under a claim on the store's
    record ``record``.

    None when the object was already done (nothing runs); :class:`ObjectBusy` when another
    invocation holds it. A failure of ``work`` releases the claim and propagates (the
    platform redelivers). ``what`` names the object in messages (``gs://b/o``); ``where``
    goes into the log lines. With no store, ``work`` simply runs."""
    if store is None:
        return work(None, None)
    state, token = store.claim(record, lease_s)
    if state == DONE:
        if stats is not None:
            stats["Duplicates"] = stats.get("Duplicates", 0) + 1
        log("INFO", "object already processed: nothing written", **where)
        return None
    if state == BUSY or token is None:
        raise ObjectBusy(f"{what} is being processed by another invocation")
    resume = Checkpoint.of(store.resume_from)
    if resume is not None:
        log("INFO", "resuming an object after the records an earlier attempt wrote",
            **where, **resume.as_dict())

    def checkpoint(progress: Checkpoint) -> None:
        store.checkpoint(record, token, progress.as_dict())

    try:
        counters = work(resume, checkpoint)
    except BaseException:
        try:
            store.release(record, token)
        except Exception as exc:
            log("ERROR", "could not release the idempotency claim; it expires with its lease",
                record=record, exc=exc, **where)
        raise
    try:
        store.complete(record, token, counters.as_dict())
    except Exception as exc:
        # the records are written; failing the request now would write them again
        log("ERROR", "object processed but not marked done; its lease will expire",
            record=record, error_type=type(exc).__name__, error=str(exc), **where)
    return counters
