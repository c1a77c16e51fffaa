"""Each source object is processed once, however often SQS delivers its notification:
the DynamoDB store of :mod:`runtimes.core.idempotency` (whose state machine this follows;
the claim's condition expression is :func:`~runtimes.core.idempotency.claimable`).

One DynamoDB item per object version, ``pk = "<bucket>/<key>#<etag>"``:

- before processing, a conditional update claims it (``IN_PROGRESS`` with a lease that
  ends when the invocation's time does); it only succeeds if there is no item, the old
  one has expired, or it is not ``DONE`` and its lease has ended, so two invocations never
  work on one object at the same time;
- while processing, after every batch the sink accepted, the item records a
  ``checkpoint`` (records settled, dead-letter entries persisted); a redelivery that takes
  the object over reads it and resumes after it, so a failure mid-object writes nothing
  twice;
- after processing, the item becomes ``DONE`` with the counts and a long TTL: a
  redelivered message finds it and writes nothing;
- when processing fails, the handler ends its lease (``FAILED``) and keeps the
  checkpoint, so the redelivery can take the object at once and resume.

A claim held by an invocation that died (timeout, out of memory) is taken over when its
lease ends (``lease_until``). ``expires_at`` is the table's TTL attribute, so DynamoDB
deletes old items by itself; a failed claim keeps a long one so its checkpoint survives
until SQS gives up on the message.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import ClientError

from ..core.idempotency import BUSY, DONE, DONE_TTL_S, GO
from .clients import error_code

__all__ = ["BUSY", "DONE", "GO", "Idempotency"]

CHECKPOINT = "checkpoint"


def _conditional(exc: ClientError) -> bool:
    return error_code(exc) == "ConditionalCheckFailedException"


class Idempotency:
    def __init__(self, client: Any, table: str, *, done_ttl_s: int = DONE_TTL_S,
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.table = table
        self.done_ttl_s = done_ttl_s
        self.clock = clock

    @staticmethod
    def key(bucket: str, key: str, etag: str) -> str:
        return f"{bucket}/{key}#{etag}"

    def claim(self, pk: str, lease_s: float) -> tuple[str, str | None]:
        """``(GO, token)`` when this invocation owns ``pk`` now, else ``(DONE|BUSY, None)``.
        After ``GO``, :attr:`resume_from` holds the checkpoint an earlier attempt left
        (``{"outputs": n, "entries": m}``), or None."""
        self.resume_from: dict[str, int] | None = None
        for _ in range(3):
            now = int(self.clock())
            token = uuid.uuid4().hex
            until = now + max(1, int(lease_s))
            try:
                resp = self.client.update_item(
                    TableName=self.table,
                    Key={"pk": {"S": pk}},
                    UpdateExpression="SET #s = :ip, lease = :token, started_at = :now, "
                                     "lease_until = :until, expires_at = :exp",
                    ConditionExpression="attribute_not_exists(pk) OR expires_at < :now OR "
                                        "(#s <> :done AND lease_until < :now)",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={
                        ":ip": {"S": "IN_PROGRESS"}, ":token": {"S": token},
                        ":now": {"N": str(now)}, ":until": {"N": str(until)},
                        ":exp": {"N": str(max(until, now + self.done_ttl_s))},
                        ":done": {"S": "DONE"}},
                    ReturnValues="ALL_NEW",
                )
                cp = resp.get("Attributes", {}).get(CHECKPOINT, {}).get("M")
                if cp:
                    self.resume_from = {k: int(v["N"]) for k, v in cp.items()}
                return GO, token
            except ClientError as exc:
                if not _conditional(exc):
                    raise
            item = self.client.get_item(TableName=self.table, Key={"pk": {"S": pk}},
                                        ConsistentRead=True).get("Item")
            if item is None:
                continue  # deleted between the two calls: try to claim again
            status = item.get("status", {}).get("S")
            return (DONE if status == "DONE" else BUSY), None
        return BUSY, None

    def checkpoint(self, pk: str, token: str, progress: Mapping[str, int]) -> None:
        """Record how far our claim got (only while it is ours)."""
        self.client.update_item(
            TableName=self.table, Key={"pk": {"S": pk}},
            UpdateExpression="SET #c = :cp",
            ConditionExpression="lease = :token",
            ExpressionAttributeNames={"#c": CHECKPOINT},
            ExpressionAttributeValues={
                ":token": {"S": token},
                ":cp": {"M": {k: {"N": str(int(v))} for k, v in progress.items()}}},
        )

    def complete(self, pk: str, token: str, counts: Mapping[str, float]) -> None:
        now = int(self.clock())
        values: dict[str, Any] = {
            ":done": {"S": "DONE"},
            ":exp": {"N": str(now + self.done_ttl_s)},
            ":now": {"N": str(now)},
        }
        sets = ["#s = :done", "expires_at = :exp", "finished_at = :now"]
        for name in ("received", "written", "dropped", "dead_lettered"):
            if name in counts:
                values[f":{name}"] = {"N": str(int(counts[name]))}
                sets.append(f"{name} = :{name}")
        self.client.update_item(
            TableName=self.table, Key={"pk": {"S": pk}},
            UpdateExpression="SET " + ", ".join(sets),
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=values,
        )

    def release(self, pk: str, token: str) -> None:
        """End our claim (and only ours) so a redelivery can take the object at once,
        keeping its checkpoint."""
        try:
            self.client.update_item(
                TableName=self.table, Key={"pk": {"S": pk}},
                UpdateExpression="SET #s = :failed, lease_until = :zero REMOVE lease",
                ConditionExpression="lease = :token",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":token": {"S": token}, ":failed": {"S": "FAILED"},
                                           ":zero": {"N": "0"}},
            )
        except ClientError as exc:
            if not _conditional(exc):
                raise
