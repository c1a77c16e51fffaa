"""``headwater replay --notifications``: the notifications the platform dead-lettered
after the function failed them every time (an object that could not be read or written,
a poison object), sent back to the pipeline's queue or topic so their objects run again,
once the cause is fixed.

- AWS: the messages in the pipeline's SQS dead-letter queue (``dlq_urls``) are sent to its
  queue (``queue_urls``) with their body and attributes, each deleted from the DLQ once
  sent: the classic redrive, which needs only ``sqs:ReceiveMessage``,
  ``sqs:DeleteMessage`` on the DLQ and ``sqs:SendMessage`` on the queue.
- GCP: the messages on the pipeline's dead-letter subscription
  (``dead_letter_subscriptions``) are published to its notifications topic (``topics``)
  with their data and attributes, each acknowledged once published; the push
  subscription then delivers them to the function again.

A crash between sending and deleting sends a notification twice; the function's claim
on the object version makes the second one a no-op. Azure has no platform DLQ here: the
function parks what it could not handle, and ``headwater replay`` runs those itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .replay import ReplayError

__all__ = ["Redriven", "redrive"]


@dataclass
class Redriven:
    where: str  # the DLQ or dead-letter subscription
    to: str  # the queue or topic
    moved: int = 0  # sent back (with --dry-run: waiting there)


def _output(outputs: Mapping[str, Any], key: str, pipeline: str) -> str:
    value = (outputs.get(key) or {}).get(pipeline)
    if not value:
        raise ReplayError(f"the stack's outputs have no {key} for pipeline {pipeline!r}: "
                          "deploy it with this headwater (`pulumi up`) first")
    return str(value)


def redrive(cloud: str, outputs: Mapping[str, Any], pipeline: str, *,
            region: str | None = None, dry_run: bool = False) -> Redriven:
    if cloud == "aws":
        return _aws(_output(outputs, "dlq_urls", pipeline),
                    _output(outputs, "queue_urls", pipeline), region, dry_run)
    if cloud == "gcp":
        return _gcp(_output(outputs, "dead_letter_subscriptions", pipeline),
                    _output(outputs, "topics", pipeline), outputs.get("project_id"), dry_run)
    raise ReplayError(f"--notifications: {cloud} has no platform dead-letter queue here "
                      "(on Azure, replay runs the parked notifications by itself)")


def _aws(dlq: str, queue: str, region: str | None, dry_run: bool) -> Redriven:
    import boto3

    sqs = boto3.client("sqs", region_name=region)
    out = Redriven(dlq, queue)
    if dry_run:
        from .status.aws import queue_depth

        out.moved = int(queue_depth(sqs, dlq))
        return out
    while True:
        msgs = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                   VisibilityTimeout=120, MessageAttributeNames=["All"]
                                   ).get("Messages", [])
        if not msgs:
            return out
        for m in msgs:
            extra = {"MessageAttributes": m["MessageAttributes"]} \
                if m.get("MessageAttributes") else {}
            sqs.send_message(QueueUrl=queue, MessageBody=m["Body"], **extra)
            sqs.delete_message(QueueUrl=dlq, ReceiptHandle=m["ReceiptHandle"])
            out.moved += 1


def _gcp(subscription: str, topic: str, project: Any, dry_run: bool) -> Redriven:
    from google.cloud import pubsub_v1

    subscriber, publisher = pubsub_v1.SubscriberClient(), pubsub_v1.PublisherClient()
    if not subscription.startswith("projects/"):
        if not project:
            raise ReplayError("the stack's outputs have no project_id: deploy it with this "
                              "headwater (`pulumi up`) first")
        subscription = subscriber.subscription_path(str(project), subscription)
    out = Redriven(subscription, topic)
    while True:
        pulled = subscriber.pull(request={"subscription": subscription, "max_messages": 100,
                                          "return_immediately": True}, timeout=60)
        got = list(pulled.received_messages)
        if not got:
            return out
        if dry_run:  # counted, then handed back at once: nothing moves
            subscriber.modify_ack_deadline(request={
                "subscription": subscription, "ack_ids": [m.ack_id for m in got],
                "ack_deadline_seconds": 0})
            out.moved += len(got)
            return out  # one pull: "at least" this many
        for m in got:
            publisher.publish(topic, m.message.data, **dict(m.message.attributes)).result(
                timeout=60)
            subscriber.acknowledge(request={"subscription": subscription,
                                            "ack_ids": [m.ack_id]})
            out.moved += 1
