"""What the platform sends: a GCS notification, as a Pub/Sub push or as a CloudEvent.

Pure parsing, no I/O. Three shapes carry the same notification:

- a Pub/Sub push (what headwater's push subscription sends, and the emulator too):
  ``{"message": {"data": base64, "attributes": {...}, "messageId": ...},
  "subscription": ..., "deliveryAttempt": n}``;
- a CloudEvent ``google.cloud.pubsub.topic.v1.messagePublished`` (an Eventarc Pub/Sub
  trigger), in binary mode (``ce-*`` headers, the push body above as data) or structured
  mode (``application/cloudevents+json``);
- a CloudEvent ``google.cloud.storage.object.v1.finalized`` (an Eventarc storage trigger),
  whose data is the object resource itself.

The notification's attributes name the event (``eventType``), the object (``bucketId``,
``objectId``, ``objectGeneration``); the JSON_API_V1 payload is the object resource. A body
that is none of these is a ``ValueError`` listing what was expected: the function answers
with an error status so Pub/Sub retries, then dead-letters it; nothing is dropped.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FINALIZE", "Notification", "ObjectRef", "parse_request"]

FINALIZE = "OBJECT_FINALIZE"
PUBSUB_EVENT = "google.cloud.pubsub.topic.v1.messagePublished"
STORAGE_FINALIZED = "google.cloud.storage.object.v1.finalized"
_SHAPE = ("a Pub/Sub push {'message': {'data': base64 JSON object resource, 'attributes': "
          "{'eventType', 'bucketId', 'objectId', 'objectGeneration'}, 'messageId'}, "
          "'subscription'}, or a CloudEvent of type " + PUBSUB_EVENT + " or "
          + STORAGE_FINALIZED)


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """One object version a notification names."""

    bucket: str
    name: str
    generation: str | None = None
    size: int | None = None
    # when this generation was created (RFC 3339): for ObjectAgeSeconds, not identity
    created: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class Notification:
    message_id: str
    event_type: str
    object: ObjectRef
    delivery_attempt: int = 1
    attributes: Mapping[str, str] = field(default_factory=dict)

    @property
    def finalized(self) -> bool:
        return self.event_type == FINALIZE


def parse_request(headers: Mapping[str, str], body: bytes | str) -> Notification:
    """The notification in one HTTP request to the function; ``ValueError`` if none."""
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        doc = json.loads(body or b"null")
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting too deep
        raise ValueError(f"request body is not JSON ({exc}); expected {_SHAPE}") from None
    ce_type = lower.get("ce-type")
    if ce_type is not None:  # binary-mode CloudEvent: the body is the event's data
        return _cloud_event(ce_type, lower.get("ce-id", ""), doc)
    if "cloudevents+json" in lower.get("content-type", "") and isinstance(doc, Mapping):
        return _cloud_event(str(doc.get("type", "")), str(doc.get("id", "")), doc.get("data"))
    return parse_push(doc)


def parse_push(doc: Any) -> Notification:
    """A Pub/Sub push body (``{"message": ..., "subscription": ...}``)."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("message"), Mapping):
        raise ValueError(f"request body is {_describe(doc)}; expected {_SHAPE}")
    msg = doc["message"]
    attrs = msg.get("attributes") or {}
    if not isinstance(attrs, Mapping):
        raise ValueError(f"message.attributes is {_describe(attrs)}; expected {_SHAPE}")
    message_id = str(msg.get("messageId") or msg.get("message_id") or "")
    payload = _payload(msg.get("data"))
    problems = [f"attribute {a!r} is missing" for a in ("eventType", "bucketId", "objectId")
                if not isinstance(attrs.get(a), str)]
    if problems:
        raise ValueError(f"message {message_id or '?'}: {'; '.join(problems)} (is this a GCS "
                         f"notification?); expected {_SHAPE}")
    size = payload.get("size") if isinstance(payload, Mapping) else None
    try:
        attempt = int(doc.get("deliveryAttempt") or 1)
    except (TypeError, ValueError, OverflowError):
        attempt = 1
    return Notification(
        message_id=message_id,
        event_type=attrs["eventType"],
        object=ObjectRef(attrs["bucketId"], attrs["objectId"],
                         attrs.get("objectGeneration") or None,
                         int(size) if isinstance(size, str | int) and str(size).isdecimal() else None,
                         created=_created(payload, attrs)),
        delivery_attempt=attempt,
        attributes=dict(attrs),
    )


def _cloud_event(ce_type: str, ce_id: str, data: Any) -> Notification:
    if ce_type == PUBSUB_EVENT:
        return parse_push(data)
    if ce_type == STORAGE_FINALIZED:
        if not (isinstance(data, Mapping) and isinstance(data.get("bucket"), str)
                and isinstance(data.get("name"), str)):
            raise ValueError(f"CloudEvent {ce_id or '?'} ({ce_type}): data needs 'bucket' and "
                             f"'name' (strings); got {_describe(data)}")
        gen = data.get("generation")
        return Notification(message_id=ce_id, event_type=FINALIZE, object=ObjectRef(
            data["bucket"], data["name"], str(gen) if gen else None,
            created=_created(data, {})))
    raise ValueError(f"CloudEvent type {ce_type!r} is not handled; expected {_SHAPE}")


def _created(payload: Any, attrs: Mapping[str, Any]) -> str:
    """The generation's creation time: the object resource's ``timeCreated`` (else
    ``updated``), else the notification's ``eventTime`` attribute."""
    obj = payload if isinstance(payload, Mapping) else {}
    return str(obj.get("timeCreated") or obj.get("updated") or attrs.get("eventTime") or "")


def _payload(data: Any) -> Any:
    """The decoded JSON_API_V1 payload, or None (payload format NONE)."""
    if data in (None, ""):
        return None
    if not isinstance(data, str):
        raise ValueError(f"message.data is {_describe(data)}, not base64 text")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"message.data is not base64 ({exc})") from None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None  # only the attributes are needed; the payload is informative


def _describe(value: Any) -> str:
    if isinstance(value, Mapping):
        keys = ", ".join(sorted(map(str, value))[:8]) or "no keys"
        return f"an object with keys {keys}"
    return type(value).__name__


_CLOUD_TRACE = re.compile(r"^([0-9a-fA-F]{32})(?:/(\d+))?")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


def trace_fields(headers: Mapping[str, str], project: str | None) -> dict[str, str]:
    """The log fields that tie a line to the request's Cloud Trace trace
    (``logging.googleapis.com/trace`` and ``.../spanId``), from the ``traceparent`` or
    ``X-Cloud-Trace-Context`` header Cloud Run passes; {} without one or a project."""
    lower = {k.lower(): v for k, v in headers.items()}
    trace = span = None
    m = _TRACEPARENT.match(lower.get("traceparent", "").strip())
    if m:
        trace, span = m.group(1), m.group(2)
    else:
        m = _CLOUD_TRACE.match(lower.get("x-cloud-trace-context", "").strip())
        if m:
            trace = m.group(1)
            span = format(int(m.group(2)), "016x") if m.group(2) else None
    if not trace or not project:
        return {}
    out = {"logging.googleapis.com/trace": f"projects/{project}/traces/{trace}"}
    if span:
        out["logging.googleapis.com/spanId"] = span
    return out
