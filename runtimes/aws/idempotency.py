"""Each source object is processed once, however often SQS delivers its notification.

One DynamoDB item per object version, ``pk = "<bucket>/<key>#<etag>"``:

- before processing, a conditional put claims it (``IN_PROGRESS`` with a lease that ends
  when the invocation's time does); the put only succeeds if there is no item or the old
  one has expired, so two invocations never work on one object at the same time;
- after processing, the item becomes ``DONE`` with the counts and a long TTL: a
  redelivered message finds it and writes nothing;
- when processing fails, the handler deletes its claim so the redelivery can take it.

A claim held by an invocation that died (timeout, out of memory) expires with its lease
and is then taken over. ``expires_at`` is also the table's TTL attribute, so DynamoDB
deletes old items by itself.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import ClientError

from .clients import error_code

__all__ = ["BUSY", "DONE", "GO", "Idempotency"]

GO, DONE, BUSY = "go", "done", "busy"
DONE_TTL_S = 14 * 24 * 3600  # SQS keeps a message at most 14 days


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
        """``(GO, token)`` when this invocation owns ``pk`` now, else ``(DONE|BUSY, None)``."""
        for _ in range(3):
            now = int(self.clock())
            token = uuid.uuid4().hex
            try:
                self.client.put_item(
                    TableName=self.table,
                    Item={
                        "pk": {"S": pk},
                        "status": {"S": "IN_PROGRESS"},
                        "lease": {"S": token},
                        "started_at": {"N": str(now)},
                        "expires_at": {"N": str(now + max(1, int(lease_s)))},
                    },
                    ConditionExpression="attribute_not_exists(pk) OR expires_at < :now",
                    ExpressionAttributeValues={":now": {"N": str(now)}},
                )
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
        """Delete our claim (and only ours) so a redelivery can take the object."""
        try:
            self.client.delete_item(
                TableName=self.table, Key={"pk": {"S": pk}},
                ConditionExpression="#l = :token",
                ExpressionAttributeNames={"#l": "lease"},
                ExpressionAttributeValues={":token": {"S": token}},
            )
        except ClientError as exc:
            if not _conditional(exc):
                raise
