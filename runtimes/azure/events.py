"""What the platform sends: Event Hub events whose bodies are Event Grid notifications.

Pure parsing, no I/O. Event Grid delivers each event to the hub as one Event Hub event;
its body is, depending on the subscription's delivery schema,

- the Event Grid schema: a JSON array holding the event (``{"topic", "subject",
  "eventType", "eventTime", "id", "data", "dataVersion", "metadataVersion"}``), or
- the CloudEvents v1.0 schema: one JSON object (``{"specversion", "type", "source",
  "subject", "id", "time", "data"}``), or an array of them.

:func:`parse_body` reads one body. A body that is not a notification is a ``ValueError``
listing what was expected; the handler dead-letters that notification (the Event Hub
trigger moves its checkpoint on regardless, so raising would only lose it later).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

__all__ = ["BLOB_CREATED", "VALIDATION", "BlobRef", "Notification", "parse_body"]

BLOB_CREATED = "Microsoft.Storage.BlobCreated"
VALIDATION = "Microsoft.EventGrid.SubscriptionValidationEvent"
_SUBJECT_HEAD = "/blobServices/default/containers/"
_SHAPE = ("an Event Grid notification: a JSON array of Event Grid events ({'eventType': "
          "'Microsoft.Storage.BlobCreated', 'subject': '/blobServices/default/containers/<c>/"
          "blobs/<name>', 'data': {'url': str, 'eTag': str, 'contentLength': int}, ...}) or "
          "CloudEvents ({'specversion': '1.0', 'type': ..., 'subject': ..., 'data': ...})")


@dataclass(frozen=True, slots=True)
class BlobRef:
    """One blob a BlobCreated event names."""

    account_url: str  # https://<account>.blob.core.windows.net (or an emulator's URL)
    container: str
    name: str
    etag: str = ""  # as the service spells it, quotes included
    size: int = -1
    sequencer: str = ""
    api: str = ""
    # the event's time (RFC 3339): for ObjectAgeSeconds, not part of the blob's identity
    created: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class Notification:
    """One event of a body: ``kind`` is ``"blob"`` (``blob`` set), ``"validation"`` or
    ``"other"`` (an event type the pipeline does not handle)."""

    kind: str
    event_type: str
    event_id: str
    schema: str  # "eventgrid" | "cloudevents"
    blob: BlobRef | None = None


def parse_body(body: bytes | str) -> list[Notification]:
    """The events one Event Hub event's body holds; ``ValueError`` if it holds none."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting too deep
        raise ValueError(f"event body is not JSON ({exc}); expected {_SHAPE}") from None
    items = doc if isinstance(doc, list) else [doc]
    if not items:
        raise ValueError(f"event body is an empty array; expected {_SHAPE}")
    return [_event(i, item) for i, item in enumerate(items)]


def _event(i: int, ev: Any) -> Notification:
    where = f"event [{i}]"
    if not isinstance(ev, Mapping):
        raise ValueError(f"{where} is {type(ev).__name__}; expected {_SHAPE}")
    if "specversion" in ev:
        schema, typ = "cloudevents", ev.get("type")
    elif "eventType" in ev:
        schema, typ = "eventgrid", ev.get("eventType")
    else:
        keys = ", ".join(sorted(map(str, ev))[:8]) or "none"
        raise ValueError(f"{where} has neither 'eventType' nor 'specversion' (keys: {keys}); "
                         f"expected {_SHAPE}")
    if not isinstance(typ, str):
        raise ValueError(f"{where}: the event type is missing; expected {_SHAPE}")
    event_id = str(ev.get("id", ""))
    if typ == VALIDATION:
        return Notification("validation", typ, event_id, schema)
    if typ != BLOB_CREATED:
        return Notification("other", typ, event_id, schema)
    return Notification("blob", typ, event_id, schema, _blob(where, ev))


def _blob(where: str, ev: Mapping[str, Any]) -> BlobRef:
    subject, data = ev.get("subject"), ev.get("data")
    if not isinstance(data, Mapping) or not isinstance(data.get("url"), str):
        raise ValueError(f"{where}: 'data.url' (string) is required; expected {_SHAPE}")
    if not isinstance(subject, str) or "/blobs/" not in subject:
        raise ValueError(f"{where}: 'subject' must be '/blobServices/default/containers/<c>/"
                         f"blobs/<name>', got {subject!r}; expected {_SHAPE}")
    # the subject carries the container and the blob name unescaped; the url escapes them
    head, _, name = subject.partition("/blobs/")
    container = head.removeprefix(_SUBJECT_HEAD.lstrip("/")).removeprefix(_SUBJECT_HEAD)
    if not container or "/" in container or not name:
        raise ValueError(f"{where}: cannot read a container and a blob name from subject "
                         f"{subject!r}; expected {_SHAPE}")
    url = urlsplit(data["url"])
    account_url = f"{url.scheme}://{url.netloc}"
    path = url.path.lstrip("/")
    if url.netloc.startswith(("127.0.0.1", "localhost")) and "/" in path:
        account_url += "/" + path.split("/", 1)[0]  # emulators put the account in the path
    etag = str(data.get("eTag") or "")
    size = data.get("contentLength")
    return BlobRef(
        account_url=account_url, container=container, name=name,
        etag=etag if not etag or etag.startswith('"') else f'"{etag}"',
        size=size if isinstance(size, int) else -1,
        sequencer=str(data.get("sequencer") or ""), api=str(data.get("api") or ""),
        created=str(ev.get("eventTime") or ev.get("time") or ""))
