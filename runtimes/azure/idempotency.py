"""Each blob version is processed once, however often its notification arrives: the
Table Storage store of :mod:`runtimes.core.idempotency` (which holds the claim/lease
state machine and drives it).

Event Grid delivers at least once, and a batch the function's retry policy runs again
repeats every notification in it. One entity per blob version in the component's claims
table (``HEADWATER_IDEMPOTENCY_TABLE``, on the data account): ``PartitionKey`` is the
pipeline, ``RowKey`` a hash of ``container/blob#etag`` (blob names hold ``/``, which a
RowKey cannot); the fields ``container``, ``blob`` and ``blob_etag`` say which version
it is.

Every write is conditional on the entity's ETag, without a batch or a transaction:

- a claim of an absent entity is a ``create`` (fails if another delivery created it
  first); of an existing one, a replace on condition that the entity is still the
  version just read, after :func:`~runtimes.core.idempotency.claimable` said it may be
  taken. A lost race is read again and decided again;
- checkpoint, complete and release replace the entity on condition that it is still the
  version our own last write made: once another delivery has taken the blob over (our
  lease ended), nothing we write lands.

Table Storage has no TTL: ``expires_at`` (seconds since the epoch) only makes an old
entity claimable again; old entities stay until deleted (one small row per blob version).
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from ..core.idempotency import (
    BUSY,
    COMPLETED,
    DONE_TTL_S,
    FAILED,
    GO,
    IN_PROGRESS,
    claimable,
    refusal,
)

__all__ = ["TableIdempotency"]

_ATTEMPTS = 5
_CHECKPOINT = ("cp_outputs", "cp_entries")
_COUNTS = ("received", "written", "dropped", "dead_lettered")


def _lost_race(exc: BaseException) -> bool:
    """412 (the entity changed since we read it) or 409 (someone created it first)."""
    return getattr(exc, "status_code", None) in (409, 412)


class TableIdempotency:
    """A :class:`~runtimes.core.idempotency.ClaimStore` on one Table Storage table
    (``table`` is an ``azure.data.tables.TableClient``)."""

    def __init__(self, table: Any, partition: str, *, done_ttl_s: int = DONE_TTL_S,
                 clock: Callable[[], float] = time.time) -> None:
        if not partition:
            raise ValueError("the claims' partition (the pipeline's name) is empty")
        self.table = table
        self.partition = partition
        self.done_ttl_s = done_ttl_s
        self.clock = clock
        self._local = threading.local()
        # (row key, lease token) -> (the entity our last write made, its ETag)
        self._mine: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}

    @property
    def resume_from(self) -> dict[str, int] | None:
        """The checkpoint the last :meth:`claim` of this thread found, or None."""
        return getattr(self._local, "resume_from", None)

    @staticmethod
    def key(container: str, blob: str, etag: str) -> str:
        return f"{container}/{blob}#{etag}"

    @staticmethod
    def row_key(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()[:40]

    def _read(self, row: str) -> tuple[dict[str, Any] | None, str | None]:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            entity = self.table.get_entity(partition_key=self.partition, row_key=row)
        except ResourceNotFoundError:
            return None, None
        return dict(entity), entity.metadata["etag"]

    def _replace(self, entity: Mapping[str, Any], etag: str) -> str:
        from azure.core import MatchConditions
        from azure.data.tables import UpdateMode

        meta = self.table.update_entity(dict(entity), mode=UpdateMode.REPLACE, etag=etag,
                                        match_condition=MatchConditions.IfNotModified)
        return str(meta["etag"])

    def claim(self, key: str, lease_s: float) -> tuple[str, str | None]:
        from azure.core.exceptions import HttpResponseError

        self._local.resume_from = None
        row = self.row_key(key)
        for _ in range(_ATTEMPTS):
            now = self.clock()
            doc, etag = self._read(row)
            if doc is not None and not claimable(doc.get("status"), doc.get("lease_until"),
                                                 doc.get("expires_at"), now):
                return refusal(doc.get("status")), None
            token = uuid.uuid4().hex
            until = now + max(1.0, float(lease_s))
            if doc is None or doc.get("status") == COMPLETED:  # new, or expired: from scratch
                container, _, rest = key.partition("/")
                blob, _, blob_etag = rest.rpartition("#")
                entity: dict[str, Any] = {"PartitionKey": self.partition, "RowKey": row,
                                          "container": container, "blob": blob,
                                          "blob_etag": blob_etag}
            else:
                entity = {k: v for k, v in doc.items() if k not in ("lease",)}
            entity.update(status=IN_PROGRESS, lease=token, started_at=now,
                          lease_until=until, expires_at=max(until, now + self.done_ttl_s))
            try:
                if doc is None:
                    new_etag = str(self.table.create_entity(entity)["etag"])
                else:
                    new_etag = self._replace(entity, str(etag))
            except HttpResponseError as exc:
                if _lost_race(exc):
                    continue  # another delivery wrote in between: read it again
                raise
            self._mine[row, token] = (entity, new_etag)
            if entity.get(_CHECKPOINT[0]) is not None:
                self._local.resume_from = {"outputs": int(entity[_CHECKPOINT[0]]),
                                           "entries": int(entity.get(_CHECKPOINT[1]) or 0)}
            return GO, token
        return BUSY, None

    def _update(self, key: str, token: str, fields: Mapping[str, Any]) -> None:
        row = self.row_key(key)
        held = self._mine.get((row, token))
        if held is None:
            raise RuntimeError(f"the claim {token} does not hold {key!r}")
        entity, etag = held
        entity = {**entity, **fields}
        self._mine[row, token] = (entity, self._replace(entity, etag))

    def checkpoint(self, key: str, token: str, progress: Mapping[str, int]) -> None:
        """Record how far our claim got (only while it is ours)."""
        self._update(key, token, {_CHECKPOINT[0]: int(progress.get("outputs", 0)),
                                  _CHECKPOINT[1]: int(progress.get("entries", 0))})

    def complete(self, key: str, token: str, counts: Mapping[str, float]) -> None:
        now = self.clock()
        fields: dict[str, Any] = {"status": COMPLETED, "finished_at": now,
                                  "expires_at": now + self.done_ttl_s}
        fields.update({n: int(counts[n]) for n in _COUNTS if n in counts})
        try:
            self._update(key, token, fields)
        finally:
            self._mine.pop((self.row_key(key), token), None)

    def release(self, key: str, token: str) -> None:
        """End our claim (and only ours) so a redelivery can take the blob at once,
        keeping its checkpoint."""
        from azure.core.exceptions import HttpResponseError

        if (self.row_key(key), token) not in self._mine:
            return  # completed or never ours: nothing to end
        try:
            self._update(key, token, {"status": FAILED, "lease_until": 0.0, "lease": ""})
        except HttpResponseError as exc:
            if not _lost_race(exc):
                raise  # taken over already otherwise: the lease is not ours to end
        finally:
            self._mine.pop((self.row_key(key), token), None)
