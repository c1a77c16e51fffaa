"""Each object generation is processed once, however often Pub/Sub pushes its
notification: the Firestore store of :mod:`runtimes.core.idempotency` (which holds the
claim/lease state machine and drives it).

One document per object generation in the component's collection
(``HEADWATER_IDEMPOTENCY_COLLECTION``, in ``HEADWATER_STATE_DATABASE``). Its id is a hash
of ``bucket/object#generation`` (object names hold ``/``, which a document id cannot);
the fields ``bucket``, ``object`` and ``generation`` say which object it is.

Every write is conditional, without a transaction:

- a claim of an absent document is a ``create`` (fails if another request created it
  first); of an existing one, an ``update`` on condition that the document is still the
  version just read (``last_update_time``), after :func:`~runtimes.core.idempotency.claimable`
  said it may be taken. A lost race is read again and decided again;
- checkpoint, complete and release are updates on condition that the document is still
  the version our own last write made: once another request has taken the object over
  (our lease ended), nothing we write lands.

``expires_at`` is a timestamp, the field of the collection's TTL policy (the component
sets it), so Firestore deletes old documents by itself; ``lease_until`` is a timestamp too.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
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

__all__ = ["FirestoreIdempotency"]

CHECKPOINT = "checkpoint"
EXPIRES_FIELD = "expires_at"  # the TTL policy's field (components/gcp)
_ATTEMPTS = 5


def _ts(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _seconds(value: Any) -> float | None:
    return value.timestamp() if isinstance(value, datetime) else None


class FirestoreIdempotency:
    def __init__(self, client: Any, collection: str, *, done_ttl_s: int = DONE_TTL_S,
                 clock: Callable[[], float] = time.time) -> None:
        if not collection:
            raise ValueError("the idempotency collection is not named "
                             "(HEADWATER_IDEMPOTENCY_COLLECTION)")
        self.client = client
        self.collection = collection
        self.done_ttl_s = done_ttl_s
        self.clock = clock
        self._local = threading.local()
        # (document id, lease token) -> update_time of that claim's last write
        self._versions: dict[tuple[str, str], Any] = {}

    @property
    def resume_from(self) -> dict[str, int] | None:
        """The checkpoint the last :meth:`claim` of this thread found, or None."""
        return getattr(self._local, "resume_from", None)

    @staticmethod
    def key(bucket: str, name: str, generation: str | None) -> str:
        return f"{bucket}/{name}#{generation or ''}"

    def _ref(self, key: str) -> Any:
        doc_id = hashlib.sha256(key.encode()).hexdigest()[:40]
        return self.client.collection(self.collection).document(doc_id)

    def claim(self, key: str, lease_s: float) -> tuple[str, str | None]:
        from google.api_core.exceptions import AlreadyExists, FailedPrecondition

        self._local.resume_from = None
        ref = self._ref(key)
        for _ in range(_ATTEMPTS):
            now = self.clock()
            snap = ref.get()
            doc = snap.to_dict() if snap.exists else None
            if doc is not None and not claimable(doc.get("status"),
                                                 _seconds(doc.get("lease_until")),
                                                 _seconds(doc.get(EXPIRES_FIELD)), now):
                return refusal(doc.get("status")), None
            token = uuid.uuid4().hex
            until = now + max(1.0, float(lease_s))
            fields = {"status": IN_PROGRESS, "lease": token, "started_at": _ts(now),
                      "lease_until": _ts(until),
                      EXPIRES_FIELD: _ts(max(until, now + self.done_ttl_s))}
            try:
                if doc is None:
                    bucket, _, rest = key.partition("/")
                    name, _, generation = rest.rpartition("#")
                    result = ref.create({"bucket": bucket, "object": name,
                                         "generation": generation, **fields})
                else:
                    if doc.get("status") == COMPLETED:  # expired: a fresh start
                        fields[CHECKPOINT] = None
                    result = ref.update(fields, option=self.client.write_option(
                        last_update_time=snap.update_time))
            except (AlreadyExists, FailedPrecondition):
                continue  # another request wrote in between: read it again
            self._versions[ref.id, token] = result.update_time
            cp = None if doc is None else fields.get(CHECKPOINT, doc.get(CHECKPOINT))
            if cp:
                self._local.resume_from = {k: int(v) for k, v in cp.items()}
            return GO, token
        return BUSY, None

    def _update(self, key: str, token: str, fields: Mapping[str, Any]) -> None:
        ref = self._ref(key)
        version = self._versions.get((ref.id, token))
        if version is None:
            raise RuntimeError(f"the claim {token} does not hold {key!r}")
        result = ref.update(dict(fields),
                            option=self.client.write_option(last_update_time=version))
        self._versions[ref.id, token] = result.update_time

    def checkpoint(self, key: str, token: str, progress: Mapping[str, int]) -> None:
        """Record how far our claim got (only while it is ours)."""
        self._update(key, token, {CHECKPOINT: {k: int(v) for k, v in progress.items()}})

    def complete(self, key: str, token: str, counts: Mapping[str, float]) -> None:
        now = self.clock()
        fields: dict[str, Any] = {"status": COMPLETED, "finished_at": _ts(now),
                                  EXPIRES_FIELD: _ts(now + self.done_ttl_s)}
        fields.update({n: int(counts[n]) for n in ("received", "written", "dropped",
                                                   "dead_lettered") if n in counts})
        try:
            self._update(key, token, fields)
        finally:
            self._versions.pop((self._ref(key).id, token), None)

    def release(self, key: str, token: str) -> None:
        """End our claim (and only ours) so a redelivery can take the object at once,
        keeping its checkpoint."""
        from google.api_core.exceptions import FailedPrecondition
        from google.cloud.firestore import DELETE_FIELD

        try:
            self._update(key, token, {"status": FAILED, "lease_until": _ts(0), "lease": DELETE_FIELD})
        except FailedPrecondition:
            pass  # taken over already: the lease is not ours to end
        finally:
            self._versions.pop((self._ref(key).id, token), None)
