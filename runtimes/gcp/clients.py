"""google-cloud clients, created once per instance on first use and reused by every
request. Each SDK is imported only when its client is first needed (cold start).

- Cloud Storage honours ``STORAGE_EMULATOR_HOST`` itself; with it set, requests are
  anonymous.
- Firestore honours ``FIRESTORE_EMULATOR_HOST`` itself.
- BigQuery honours no emulator variable: ``HEADWATER_BIGQUERY_ENDPOINT`` sets its API
  endpoint (``client_options={"api_endpoint": ...}``), and
  ``HEADWATER_BIGQUERY_ANONYMOUS=1`` sends no credentials (a local stand-in). The same
  endpoint setting points the function at any BigQuery-compatible endpoint.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["bigquery", "firestore", "project", "reset", "secrets", "storage"]

_clients: dict[str, Any] = {}


def project() -> str | None:
    return (os.environ.get("HEADWATER_PROJECT") or os.environ.get("GOOGLE_CLOUD_PROJECT")
            or None)


def _anonymous() -> Any:
    from google.auth.credentials import AnonymousCredentials

    return AnonymousCredentials()


def storage() -> Any:
    c = _clients.get("storage")
    if c is None:
        from google.cloud import storage as gcs

        if os.environ.get("STORAGE_EMULATOR_HOST"):
            c = gcs.Client(project=project() or "test", credentials=_anonymous())
        else:
            c = gcs.Client(project=project())
        _clients["storage"] = c
    return c


def bigquery() -> Any:
    c = _clients.get("bigquery")
    if c is None:
        from google.cloud import bigquery as bq

        kwargs: dict[str, Any] = {"project": project()}
        endpoint = os.environ.get("HEADWATER_BIGQUERY_ENDPOINT")
        if endpoint:
            kwargs["client_options"] = {"api_endpoint": endpoint}
        if os.environ.get("HEADWATER_BIGQUERY_ANONYMOUS") == "1":
            kwargs["credentials"] = _anonymous()
        c = _clients["bigquery"] = bq.Client(**kwargs)
    return c


def firestore(database: str | None) -> Any:
    key = f"firestore:{database}"
    c = _clients.get(key)
    if c is None:
        from google.cloud import firestore as fs

        kwargs: dict[str, Any] = {"project": project()}
        if database:
            kwargs["database"] = database
        c = _clients[key] = fs.Client(**kwargs)
    return c


def secrets() -> Any:
    c = _clients.get("secrets")
    if c is None:
        from google.cloud import secretmanager

        c = _clients["secrets"] = secretmanager.SecretManagerServiceClient()
    return c


def reset() -> None:
    """Forget every client (tests change endpoints between cases)."""
    _clients.clear()
