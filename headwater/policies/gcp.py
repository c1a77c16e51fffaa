"""GCP's checks of the policy rules.

What GCP does by itself has no row here: Cloud Storage, Pub/Sub, BigQuery and Firestore
encrypt at rest always (Google-managed keys), and serve only over TLS. Rows:

- no public access: every bucket enforces public access prevention and uniform
  bucket-level access, and no IAM grant names ``allUsers`` or ``allAuthenticatedUsers``;
- no primitive project roles (``roles/owner``, ``roles/editor``, ``roles/viewer``) in any
  IAM grant;
- dead-letters: every push subscription has a dead-letter policy, and every dead-letter
  topic has a subscription of its own (Pub/Sub drops what reaches a topic nobody reads);
- no plain-text secrets in a Cloud Function's environment variables.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from . import get, is_reference, is_reference_map, is_secret_name, of_type, rule

BUCKET = "gcp:storage/bucket:Bucket"
SUBSCRIPTION = "gcp:pubsub/subscription:Subscription"
FUNCTION = "gcp:cloudfunctionsv2/function:Function"
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
