"""GCP's checks of the policy rules.

What GCP does by itself has no row here: Cloud Storage, Pub/Sub, BigQuery and Firestore
encrypt at rest always (Google-managed keys), and serve only over TLS. Rows:

- no public access: every bucket enforces public access prevention and uniform
  bucket-level access, and no IAM grant names ``allUsers`` or ``allAuthenticatedUsers``;
- no primitive project roles (``roles/owner``, ``roles/editor``, ``roles/viewer``) in any
  IAM grant;
- dead-letters: every push subscription has a dead-letter policy, and every dead-letter
  topic has a subscription of its own (Pub/Sub drops what reaches a topic nobody reads);
- no plain-text secrets in a Cloud Function's environment variables;
- log retention: every log bucket the stack configures sets ``retentionDays`` (a Cloud
  Function's logs go to the project's ``_Default`` bucket, which Google keeps 30 days
  unless changed: that is a retention, so functions have no row);
- function timeout vs the push subscription's ack deadline (see :func:`timeouts`);
- recursion: no subscription dead-letters into the topic it reads, and no function
  writes dead-letters under the prefix of a bucket notification.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from . import get, is_reference, is_reference_map, is_secret_name, of_type, prefixes_overlap, rule

BUCKET = "gcp:storage/bucket:Bucket"
SUBSCRIPTION = "gcp:pubsub/subscription:Subscription"
FUNCTION = "gcp:cloudfunctionsv2/function:Function"
NOTIFICATION = "gcp:storage/notification:Notification"
LOG_BUCKETS = tuple(f"gcp:logging/{k}BucketConfig:{k[0].upper()}{k[1:]}BucketConfig"
                    for k in ("project", "folder", "organization", "billingAccount"))
PUBLIC_MEMBERS = ("allUsers", "allAuthenticatedUsers")
PRIMITIVE_ROLES = ("roles/owner", "roles/editor", "roles/viewer")


def _grants(res: Any) -> list[tuple[str, str]]:
    """(role, member) pairs of an IAM member, binding or policy resource."""
    if not res.resource_type.startswith("gcp:") or "iam" not in res.resource_type.lower():
        return []
    role = str(get(res.props, "role", default=""))
    members = [get(res.props, "member")] + list(get(res.props, "members", default=[]))
    out = [(role, str(m)) for m in members if m]
    doc = get(res.props, "policyData")
    if isinstance(doc, str) and doc:
        for b in get(json.loads(doc), "bindings", default=[]):
            out += [(str(get(b, "role", default="")), str(m))
                    for m in get(b, "members", default=[])]
    return out


@rule("no-public-access").check
def public_buckets(resources: Sequence[Any]) -> Iterator[tuple[Any, str, str]]:
    for b in of_type(resources, BUCKET):
        if get(b.props, "publicAccessPrevention") != "enforced":
            yield (b, "does not enforce public access prevention",
                   "set public_access_prevention='enforced'")
        if get(b.props, "uniformBucketLevelAccess") is not True:
            yield (b, "allows object ACLs (uniform bucket-level access is off)",
                   "set uniform_bucket_level_access=True")
    for r in resources:
        for role, member in _grants(r):
            if member in PUBLIC_MEMBERS:
                yield (r, f"grants {role} to {member}", "grant named principals only")


@rule("iam-no-wildcards").check
def primitive_roles(res: Any) -> Iterator[tuple[Any, str, str]]:
    for role, member in _grants(res):
        if role in PRIMITIVE_ROLES:
            yield (res, f"grants the primitive role {role} to {member}",
                   "grant a predefined role scoped to the resource it needs (e.g. "
                   "roles/storage.objectViewer on one bucket)")


@rule("dead-letter").check
def dead_letters(resources: Sequence[Any]) -> Iterator[tuple[Any, str, str]]:
    subs = list(of_type(resources, SUBSCRIPTION))
    read_topics = {get(s.props, "topic") for s in subs}
    for s in subs:
        target = get(s.props, "deadLetterPolicy", "deadLetterTopic")
        if get(s.props, "pushConfig") and not target:
            yield (s, "pushes without a dead-letter policy, so a message that keeps failing "
                   "is retried until it expires",
                   "set dead_letter_policy={dead_letter_topic: <a topic>, "
                   "max_delivery_attempts: N}")
        if target and target not in read_topics:
            yield (s, f"dead-letters to {target}, which no subscription reads, so "
                   "dead-lettered messages are lost",
                   "add a pull subscription on the dead-letter topic")


@rule("no-plain-secrets").check
def plain_secrets(res: Any) -> Iterator[tuple[Any, str, str]]:
    if res.resource_type != FUNCTION:
        return
    variables = get(res.props, "serviceConfig", "environmentVariables", default={})
    for name in variables:
        value = variables[name]
        if is_secret_name(name) and not (is_reference(value) or is_reference_map(name, value)):
            yield (res, f"environment variable {name} holds a literal value",
                   "keep the value in Secret Manager and pass its resource name "
                   "(projects/.../secrets/...), or use secret_environment_variables")


@rule("log-retention").check
def log_retention(resources: Sequence[Any]) -> Iterator[tuple[Any, str, str]]:
    for b in of_type(resources, *LOG_BUCKETS):
        if not get(b.props, "retentionDays"):
            yield (b, "does not set how long the log bucket keeps logs",
                   "set retention_days (e.g. 30)")


def _pushed_function(resources: Sequence[Any], sub: Any) -> Any:
    endpoint = get(sub.props, "pushConfig", "pushEndpoint")
    for f in of_type(resources, FUNCTION):
        if endpoint and endpoint in (get(f.props, "serviceConfig", "uri"), get(f.props, "url")):
            return f
    return None


@rule("timeout-below-visibility").check
def timeouts(resources: Sequence[Any]) -> Iterator[tuple[Any, str, str]]:
    """GCP's version of "the function's timeout is below the queue's visibility timeout".

    For a push subscription the ack deadline is how long Pub/Sub waits for the HTTP
    answer before it counts the delivery as failed and sends the message again (possibly
    to another instance). The function's timeout and the deadline both run from the
    request, and a request that reaches its timeout is answered (an error) then: so the
    timeout may equal the deadline but not exceed it, or a live request gets company.
    (headwater's component sets the deadline to the timeout; the claim's lease, 30 s
    longer, turns a redelivery that races the end of a request into a 409.)"""
    for sub in of_type(resources, SUBSCRIPTION):
        fn = _pushed_function(resources, sub)
        if fn is None:
            continue
        timeout = get(fn.props, "serviceConfig", "timeoutSeconds", default=60)
        deadline = get(sub.props, "ackDeadlineSeconds", default=10)
        if timeout > deadline:
            yield (sub, f"ack deadline {deadline:g}s is below the timeout {timeout:g}s of "
                   f"function {fn.name!r}, so Pub/Sub pushes the message again while the "
                   "first request still runs",
                   f"raise ack_deadline_seconds to {timeout:g} (at most 600) or lower the "
                   "function timeout to the deadline")


@rule("no-retrigger").check
def retrigger(resources: Sequence[Any]) -> Iterator[tuple[Any, str, str]]:
    for sub in of_type(resources, SUBSCRIPTION):
        target = get(sub.props, "deadLetterPolicy", "deadLetterTopic")
        if target and target == get(sub.props, "topic"):
            yield (sub, f"dead-letters into {target}, the topic it reads, so a failing "
                   "message comes back forever", "dead-letter to a topic of its own")
    for n in of_type(resources, NOTIFICATION):
        bucket, source = get(n.props, "bucket"), str(get(n.props, "objectNamePrefix",
                                                          default=""))
        for f in of_type(resources, FUNCTION):
            env = get(f.props, "serviceConfig", "environmentVariables", default={})
            if get(env, "HEADWATER_DEADLETTER_BUCKET") != bucket:
                continue
            written = str(get(env, "HEADWATER_DEADLETTER_PREFIX", default=""))
            if prefixes_overlap(written, source):
                yield (f, f"writes dead-letters to gs://{bucket}/{written}, under the prefix "
                       f"gs://{bucket}/{source} of notification {n.name!r}, so every "
                       "dead-letter triggers a pipeline again",
                       "write dead-letters to another bucket, or under a prefix that neither "
                       "starts with the notification's prefix nor is a start of it")
