"""The ``ctx.lookup`` and ``ctx.secret`` ports on Firestore and Secret Manager.

Both cache per instance (:class:`~runtimes.core.cache.TtlCache`): a warm function reuses
rows and secrets for a bounded time, so a batch of a thousand orders from forty users
costs one batched ``get_all`` the first time and none for the next few minutes.

A lookup table is a Firestore collection whose document ids are the key values (as
text). Store errors become :class:`~transforms.contract.Retryable`: the request fails and
Pub/Sub redelivers, rather than dead-lettering every record of an object for an outage.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from transforms.contract import Retryable

from ..core.cache import CachedLookup, TtlCache
from ..core.secrets import CachedSecrets

__all__ = ["BATCH_KEYS", "FirestoreLookup", "SecretStore"]

BATCH_KEYS = 300  # documents per BatchGetDocuments call


class FirestoreLookup(CachedLookup):
    """``lookup(table, keys) -> {key: row}``; ``collections`` maps the logical table a
    transform names to its Firestore collection."""

    batch_keys = BATCH_KEYS

    def __init__(self, client: Any, collections: Mapping[str, str], *,
                 cache: TtlCache | None = None) -> None:
        super().__init__(collections, cache=cache)
        self.client = client
        self.collections = self.tables

    def wire(self, table: str, value: Hashable) -> str:
        doc_id = value if isinstance(value, str) else str(value)
        if not doc_id or "/" in doc_id:
            raise ValueError(f"lookup key {value!r} cannot be a Firestore document id")
        return doc_id

    def fetch(self, table: str, physical: str, keys: list[str],
              out: dict[str, dict[str, Any]]) -> None:
        self._fetch(physical, keys, out)

    def _fetch(self, collection: str, ids: list[str], out: dict[str, dict[str, Any]]) -> None:
        from google.api_core.exceptions import GoogleAPIError

        refs = [self.client.collection(collection).document(i) for i in ids]
        self.calls += 1
        try:
            for snap in self.client.get_all(refs):
                if snap.exists:
                    out[snap.id] = snap.to_dict()
        except GoogleAPIError as exc:
            raise Retryable(f"lookup in Firestore collection {collection!r} failed: "
                            f"{type(exc).__name__}: {exc}") from exc


class SecretStore(CachedSecrets):
    """``secret(name) -> str`` on Secret Manager; ``ids`` maps logical names to secrets
    (``projects/P/secrets/S``, optionally ``/versions/V``, or a bare secret id in
    ``project``); the latest version unless one is named."""

    def __init__(self, client: Any, ids: Mapping[str, str], project: str | None = None, *,
                 ttl_s: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(ids, ttl_s=ttl_s, clock=clock)
        self.client = client
        self.project = project

    def version(self, ref: str) -> str:
        if not ref.startswith("projects/"):
            if not self.project:
                raise LookupError(f"secret {ref!r} is not a full name (projects/P/secrets/S) "
                                  "and HEADWATER_PROJECT is not set")
            ref = f"projects/{self.project}/secrets/{ref}"
        return ref if "/versions/" in ref else f"{ref}/versions/latest"

    def fetch(self, name: str, ref: str) -> str:
        from google.api_core.exceptions import GoogleAPIError

        try:
            resp = self.client.access_secret_version(name=self.version(ref))
        except GoogleAPIError as exc:
            raise Retryable(f"reading secret {name!r} ({ref}) failed: {exc}") from exc
        try:
            return resp.payload.data.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"secret {name!r} ({ref}) holds binary data, not text") from None
