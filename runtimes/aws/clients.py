"""boto3 clients, created once per Lambda container and reused by every invocation.

``AWS_ENDPOINT_URL`` (and ``AWS_ENDPOINT_URL_<SERVICE>``) are honoured by botocore itself,
which is how the end-to-end tests point the adapter at a moto server.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

__all__ = ["CONFIG", "client", "error_code", "error_message", "is_transient", "reset"]

# Standard retry mode retries throttling and 5xx with backoff; the timeouts keep a
# hung connection from eating the whole invocation.
CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=5,
    read_timeout=60,
    max_pool_connections=20,
)

_clients: dict[str, Any] = {}
_session: list[boto3.session.Session] = []

_TRANSIENT = frozenset({
    "ProvisionedThroughputExceededException", "ThrottlingException", "Throttling",
    "RequestLimitExceeded", "InternalServerError", "InternalFailure", "ServiceUnavailable",
    "ServiceUnavailableException", "SlowDown", "RequestTimeout", "InternalError",
})


def client(service: str) -> Any:
    """The container's client for ``service`` (created on first use)."""
    c = _clients.get(service)
    if c is None:
        if not _session:
            _session.append(boto3.session.Session())
        c = _clients[service] = _session[0].client(service, config=CONFIG)
    return c


def reset() -> None:
    """Forget every client (tests change the endpoint between cases)."""
    _clients.clear()
    _session.clear()


def error_code(exc: BaseException) -> str:
    """The service's error code of a :class:`ClientError` (``"ThrottlingException"``), else ""."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def error_message(exc: BaseException) -> str:
    """The service's error message of a :class:`ClientError`, else ``str(exc)``."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Message", "") or exc)
    return str(exc)


def is_transient(exc: BaseException) -> bool:
    """Throttling, 5xx and connection problems: worth trying again later."""
    if isinstance(exc, BotoCoreError):
        return True
    return error_code(exc) in _TRANSIENT
