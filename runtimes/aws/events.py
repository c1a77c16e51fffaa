"""What the platform sends: SQS events whose message bodies are S3 notifications.

Pure parsing, no I/O. Two levels, because they fail differently:

- :func:`parse_event` reads the Lambda event itself. A malformed event is a
  ``ValueError`` listing what was expected; the whole invocation fails.
- :func:`parse_body` reads one message body. A malformed body is a ``ValueError`` too,
  but the handler reports only that message as failed, so SQS moves it to the DLQ after
  its receive count and the other messages of the batch go on.

A body is an S3 notification (``{"Records": [...]}``, several records possible), the
``s3:TestEvent`` S3 sends when a notification is configured, either of these wrapped in
an SNS notification (``{"Type": "Notification", "Message": "..."}``), or an S3 event that
an EventBridge rule delivered (``{"source": "aws.s3", "detail-type": "Object Created",
"detail": {...}}``, the shape of the S3 User Guide's "EventBridge event message
structure"). Object keys of S3 notifications arrive URL-encoded with ``+`` for a space and
are decoded here; EventBridge events carry the key as it is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

__all__ = ["Notification", "ObjectRef", "SqsMessage", "parse_body", "parse_event"]

_EVENT_SHAPE = ("an SQS event: {'Records': [{'messageId': str, 'receiptHandle': str, "
                "'body': str, 'eventSource': 'aws:sqs', 'eventSourceARN': str, ...}, ...]}")
_BODY_SHAPE = ("an S3 notification: {'Records': [{'eventSource': 'aws:s3', 'eventName': "
               "'ObjectCreated:*', 's3': {'bucket': {'name': str}, 'object': {'key': str, "
               "'size': int, 'eTag': str}}}, ...]}, an s3:TestEvent, either in an SNS "
               "notification, or an EventBridge S3 event {'source': 'aws.s3', 'detail-type': "
               "'Object Created', 'detail': {'bucket': {'name': str}, 'object': {'key': str, "
               "...}}}")


@dataclass(frozen=True, slots=True)
class SqsMessage:
    message_id: str
    receipt_handle: str
    body: str
    attributes: Mapping[str, Any] = field(default_factory=dict)
    source_arn: str = ""
    region: str = ""

    @property
    def receive_count(self) -> int:
        try:
            return int(self.attributes.get("ApproximateReceiveCount", 1))
        except (TypeError, ValueError, OverflowError):
            return 1


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """One object an S3 record names, with its key already decoded."""

    bucket: str
    key: str
    size: int = 0
    etag: str = ""
    sequencer: str = ""
    version_id: str | None = None
    event_name: str = "ObjectCreated:Put"
    # when S3 created the object (the event's time, RFC 3339): for ObjectAgeSeconds, not
    # part of the object's identity
    event_time: str = field(default="", compare=False)

    @property
    def created(self) -> bool:
        return self.event_name.startswith("ObjectCreated")


@dataclass(frozen=True, slots=True)
class Notification:
    test: bool = False
    objects: tuple[ObjectRef, ...] = ()


def parse_event(event: Any) -> list[SqsMessage]:
    """The messages of a Lambda SQS event, in order; ``ValueError`` if it is not one."""
    if not isinstance(event, Mapping) or not isinstance(event.get("Records"), list):
        raise ValueError(f"expected {_EVENT_SHAPE}; got {_describe(event)}")
    out = []
    for i, rec in enumerate(event["Records"]):
        problems = []
        if not isinstance(rec, Mapping):
            raise ValueError(f"Records[{i}]: expected an SQS message object; got {_describe(rec)}")
        for name in ("messageId", "body"):
            if not isinstance(rec.get(name), str):
                problems.append(f"'{name}' (string) is missing")
        if rec.get("eventSource") != "aws:sqs":
            problems.append(f"'eventSource' is {rec.get('eventSource')!r}, not 'aws:sqs'")
        if problems:
            raise ValueError(f"Records[{i}]: {'; '.join(problems)}; expected {_EVENT_SHAPE}")
        attributes = rec.get("attributes")
        out.append(SqsMessage(
            message_id=rec["messageId"],
            receipt_handle=str(rec.get("receiptHandle", "")),
            body=rec["body"],
            attributes=attributes if isinstance(attributes, Mapping) else {},
            source_arn=str(rec.get("eventSourceARN", "")),
            region=str(rec.get("awsRegion", "")),
        ))
    return out


def parse_body(body: str) -> Notification:
    """The objects one message body names; ``ValueError`` if it is not an S3 notification."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting too deep
        raise ValueError(f"message body is not JSON ({exc}); expected {_BODY_SHAPE}") from None
    return _notification(doc, wrapped=False)


def _notification(doc: Any, wrapped: bool) -> Notification:
    if not isinstance(doc, Mapping):
        raise ValueError(f"message body is {_describe(doc)}; expected {_BODY_SHAPE}")
    if doc.get("Event") == "s3:TestEvent":
        return Notification(test=True)
    if not wrapped and doc.get("Type") == "Notification" and isinstance(doc.get("Message"), str):
        try:
            inner = json.loads(doc["Message"])
        except (ValueError, RecursionError) as exc:  # RecursionError: nesting too deep
            raise ValueError(f"SNS Message is not JSON ({exc}); expected {_BODY_SHAPE}") from None
        return _notification(inner, wrapped=True)
    if doc.get("source") == "aws.s3" and "detail-type" in doc:
        return Notification(objects=(_eventbridge(doc),))
    records = doc.get("Records")
    if not isinstance(records, list) or not records:
        keys = ", ".join(sorted(map(str, doc))) or "none"
        raise ValueError(f"message body has no 'Records' list (keys: {keys}); "
                         f"expected {_BODY_SHAPE}")
    return Notification(objects=tuple(_object(i, r) for i, r in enumerate(records)))


def _object(i: int, rec: Any) -> ObjectRef:
    where = f"Records[{i}]"
    if not isinstance(rec, Mapping):
        raise ValueError(f"{where}: got {_describe(rec)}; expected {_BODY_SHAPE}")
    if rec.get("eventSource") not in ("aws:s3", None):
        raise ValueError(f"{where}: 'eventSource' is {rec.get('eventSource')!r}, not 'aws:s3'; "
                         f"expected {_BODY_SHAPE}")
    s3 = rec.get("s3")
    bucket = s3.get("bucket") if isinstance(s3, Mapping) else None
    obj = s3.get("object") if isinstance(s3, Mapping) else None
    if not (isinstance(bucket, Mapping) and isinstance(bucket.get("name"), str)
            and isinstance(obj, Mapping) and isinstance(obj.get("key"), str)):
        raise ValueError(f"{where}: 's3.bucket.name' and 's3.object.key' (strings) are "
                         f"required; expected {_BODY_SHAPE}")
    size = obj.get("size", 0)
    return ObjectRef(
        bucket=bucket["name"],
        key=unquote_plus(obj["key"]),
        size=size if isinstance(size, int) else 0,
        etag=str(obj.get("eTag", "")).strip('"'),
        sequencer=str(obj.get("sequencer", "")),
        version_id=obj.get("versionId") or None,
        event_name=str(rec.get("eventName", "ObjectCreated:Put")),
        event_time=str(rec.get("eventTime") or ""),
    )


def _eventbridge(doc: Mapping[str, Any]) -> ObjectRef:
    detail = doc.get("detail")
    bucket = detail.get("bucket") if isinstance(detail, Mapping) else None
    obj = detail.get("object") if isinstance(detail, Mapping) else None
    if not (isinstance(bucket, Mapping) and isinstance(bucket.get("name"), str)
            and isinstance(obj, Mapping) and isinstance(obj.get("key"), str)):
        raise ValueError("EventBridge S3 event: 'detail.bucket.name' and 'detail.object.key' "
                         f"(strings) are required; expected {_BODY_SHAPE}")
    kind = str(doc.get("detail-type", ""))
    size = obj.get("size", 0)
    return ObjectRef(
        bucket=bucket["name"],
        key=obj["key"],
        size=size if isinstance(size, int) else 0,
        etag=str(obj.get("etag") or obj.get("eTag") or "").strip('"'),
        sequencer=str(obj.get("sequencer", "")),
        # "null" is the version id S3 gives objects of a bucket without versioning
        version_id=(obj.get("version-id") or None) if obj.get("version-id") != "null" else None,
        # "Object Created" -> ObjectCreated:<reason>; anything else is not a creation
        event_name=(f"ObjectCreated:{detail.get('reason', 'PutObject')}"  # type: ignore[union-attr]
                    if kind == "Object Created" else kind.replace(" ", "")),
        event_time=str(doc.get("time") or ""),
    )


def _describe(value: Any) -> str:
    if isinstance(value, Mapping):
        keys = ", ".join(sorted(map(str, value))[:8]) or "no keys"
        return f"an object with keys {keys}"
    return f"{type(value).__name__}"
