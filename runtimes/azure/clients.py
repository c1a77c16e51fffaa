"""Data-plane clients, created once per Functions worker and reused by every invocation.

In Azure the function reaches everything with its system-assigned identity
(``DefaultAzureCredential``); no key or connection string is configured. For the storage
emulator (Azurite) only, ``HEADWATER_STORAGE_CONNECTION_STRING`` replaces the account
URLs: the component never sets it. The processed hub's producer can be replaced with
:func:`set_producer` (tests and benchmarks stand in for Event Hubs, which has no emulator
that runs without Docker).
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["blob_service", "credential", "producer", "reset", "set_producer", "table_service"]

_clients: dict[str, Any] = {}


def _env(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise RuntimeError(f"app setting {name} is not set (the headwater component sets it)")
    return value


def credential() -> Any:
    c = _clients.get("credential")
    if c is None:
        from azure.identity import DefaultAzureCredential

        c = _clients["credential"] = DefaultAzureCredential()
    return c


def _storage(name: str, cls: Any, url_setting: str) -> Any:
    """A storage service client: from ``HEADWATER_STORAGE_CONNECTION_STRING`` where one is
    set (Azurite, tests), else the account URL in ``url_setting`` with the identity."""
    c = _clients.get(name)
    if c is None:
        conn = os.environ.get("HEADWATER_STORAGE_CONNECTION_STRING")
        c = _clients[name] = (cls.from_connection_string(conn) if conn else
                              cls(_env(url_setting), credential=credential()))
    return c


def blob_service() -> Any:
    from azure.storage.blob import BlobServiceClient

    return _storage("blob", BlobServiceClient, "HEADWATER_BLOB_ACCOUNT_URL")


def table_service() -> Any:
    from azure.data.tables import TableServiceClient

    return _storage("table", TableServiceClient, "HEADWATER_TABLE_ACCOUNT_URL")


def producer() -> Any:
    """The processed hub's ``EventHubProducerClient``."""
    c = _clients.get("producer")
    if c is None:
        from azure.eventhub import EventHubProducerClient

        c = _clients["producer"] = EventHubProducerClient(
            fully_qualified_namespace=_env("HEADWATER_EVENTHUB_NAMESPACE"),
            eventhub_name=_env("HEADWATER_PROCESSED_HUB"), credential=credential())
    return c


def set_producer(client: Any) -> None:
    """Use ``client`` (anything with ``create_batch``/``send_batch``) as the producer."""
    _clients["producer"] = client


def reset() -> None:
    """Forget every client (tests switch endpoints between cases)."""
    for name in ("blob", "table"):
        c = _clients.get(name)
        if c is not None:
            c.close()
    _clients.clear()
