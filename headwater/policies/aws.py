"""AWS's checks of the policy rules, and the IAM wildcard rule they and the AWS component
share (:func:`wildcard_problems`; ``components/aws/policy.py`` renders every document
through it).

The wildcard rule:

- an ``Allow`` statement never has ``*`` in an Action;
- an ``Allow`` Resource has no ``*`` except as the last character of an ARN that names
  the children of one exact parent: S3 objects under a non-empty key prefix
  (``arn:aws:s3:::bucket/raw/orders/*``) or the log streams of one log group
  (``arn:aws:logs:region:account:log-group:/aws/lambda/fn:log-stream:*``). Object keys and
  Lambda's log stream names are chosen at run time, so IAM has no other way to name them;
  the parent is always exact;
- a ``Deny`` statement may use wildcards only when it is the TLS-only guard (condition
  ``aws:SecureTransport = false``): a wildcard there narrows access, it never grants it;
- ``Resource: "*"`` is allowed in a statement whose actions are all in
  :data:`RESOURCE_STAR_ONLY`: actions for which AWS's Service Authorization Reference lists
  no resource type, so ``"*"`` is the only resource IAM accepts (X-Ray's segment writes,
  which Lambda active tracing needs).

Resources are matched the way AWS links them: a bucket's guards by bucket name, a queue's
dead-letter by ARN, an event source mapping by queue ARN and function ARN or name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

from . import get, is_reference, is_reference_map, is_secret_name, of_type, prefixes_overlap, rule

__all__ = ["wildcard_problems"]

BUCKET = "aws:s3/bucket:Bucket"
QUEUE = "aws:sqs/queue:Queue"
FUNCTION = "aws:lambda/function:Function"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
NOTIFICATION = "aws:s3/bucketNotification:BucketNotification"
STREAM = "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream"
ESM = "aws:lambda/eventSourceMapping:EventSourceMapping"
PUBLIC_ACLS = ("public-read", "public-read-write", "authenticated-read")
BLOCK_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
               "restrictPublicBuckets")

# actions with no resource-level permissions (Service Authorization Reference, "Actions
# defined by AWS X-Ray": no resource type for these two)
RESOURCE_STAR_ONLY = frozenset({"xray:PutTraceSegments", "xray:PutTelemetryRecords"})

_S3_PREFIX = re.compile(r"^arn:[a-z-]+:s3:::[a-z0-9][a-z0-9.-]*/[^*?]+\*$")
_LOG_STREAMS = re.compile(
    r"^arn:[a-z-]+:logs:[a-z0-9-]+:\d{12}:log-group:[^*?:]+:log-stream:\*$")


# -- the IAM wildcard rule -------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) or (
        isinstance(value, Sequence) and not isinstance(value, str)) else [value]


def _is_tls_guard(stmt: Any) -> bool:
    return str(get(stmt, "Condition", "Bool", "aws:SecureTransport")).lower() == "false"


def _document(doc: Any) -> Any:
    return json.loads(doc) if isinstance(doc, str) else doc


def wildcard_problems(doc: Any) -> list[str]:
    """Every breach of the wildcard rule in ``doc`` (a policy document or its JSON)."""
    doc = _document(doc)
    problems: list[str] = []
    for i, stmt in enumerate(_as_list(get(doc, "Statement", default=[]))):
        where = f"Statement[{i}]"
        if "NotAction" in stmt or "NotResource" in stmt:
            problems.append(f"{where} uses NotAction/NotResource")
        actions = [str(a) for a in _as_list(get(stmt, "Action", default=[]))]
        resources = [str(r) for r in _as_list(get(stmt, "Resource", default=[]))]
        if get(stmt, "Effect") == "Deny":
            if (any("*" in a for a in actions) or any("*" in r for r in resources)) \
                    and not _is_tls_guard(stmt):
                problems.append(f"{where}: wildcard in a Deny that is not the TLS guard")
            continue
        problems += [f"{where}: Action {a!r} has '*'" for a in actions if "*" in a]
        star_only = bool(actions) and set(actions) <= RESOURCE_STAR_ONLY
        for r in resources:
            if star_only and r == "*":
                continue
            if "*" in r and not (_S3_PREFIX.match(r) or _LOG_STREAMS.match(r)):
                problems.append(f"{where}: Resource {r!r} has '*'")
    return problems


_POLICY_PROPS = {
    "aws:iam/rolePolicy:RolePolicy": "policy",
    "aws:iam/policy:Policy": "policy",
    "aws:iam/role:Role": "assumeRolePolicy",
    "aws:s3/bucketPolicy:BucketPolicy": "policy",
    "aws:sqs/queuePolicy:QueuePolicy": "policy",
    "aws:sns/topicPolicy:TopicPolicy": "policy",
}


@rule("iam-no-wildcards").check
def iam_wildcards(res: Any) -> Iterator[tuple[Any, str, str]]:
    prop = _POLICY_PROPS.get(res.resource_type)
    if prop is None:
        return
    docs = [(prop, get(res.props, prop))]
    if res.resource_type == "aws:iam/role:Role":
        docs += [(f"inlinePolicies[{i}].policy", get(p, "policy"))
                 for i, p in enumerate(get(res.props, "inlinePolicies", default=[]))]
    for where, doc in docs:
        if doc:
            for problem in wildcard_problems(doc):
                yield (res, f"{where} {problem}",
                       "name the exact actions and resource ARNs (only the S3 object-prefix "
                       "and log-stream child wildcards are allowed)")


# -- buckets: public access, encryption, TLS -------------------------------------------


def _buckets(resources: Sequence[Any]) -> Iterator[tuple[Any, str]]:
    for b in of_type(resources, BUCKET):
        yield b, str(get(b.props, "bucket", default=b.name))


def _for_bucket(resources: Sequence[Any], typ: str, bucket: str) -> list[Any]:
    return [r for r in of_type(resources, typ) if get(r.props, "bucket") == bucket]


def _public_statements(doc: Any) -> list[int]:
    out = []
    for i, stmt in enumerate(_as_list(get(_document(doc), "Statement", default=[]))):
        principal = get(stmt, "Principal")
        everyone = principal == "*" or get(principal, "AWS") == "*" or \
            "*" in _as_list(get(principal, "AWS", default=[]))
        if get(stmt, "Effect") == "Allow" and everyone and not get(stmt, "Condition"):
            out.append(i)
    return out


@rule("no-public-access").check
def public_buckets(resources: Sequence[Any]) -> Iterator[tuple[Any, str, str]]:
    for b, name in _buckets(resources):
        blocks = _for_bucket(resources, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
                             name)
        if not any(all(get(pb.props, f) is True for f in BLOCK_FLAGS) for pb in blocks):
            yield (b, "has no public access block with all four settings on",
                   "add an aws.s3.BucketPublicAccessBlock for it with block_public_acls, "
                   "block_public_policy, ignore_public_acls and restrict_public_buckets true")
        if get(b.props, "acl") in PUBLIC_ACLS:
            yield (b, f"acl is {get(b.props, 'acl')!r}", "remove the public ACL")
    for acl in of_type(resources, "aws:s3/bucketAcl:BucketAcl"):
        if get(acl.props, "acl") in PUBLIC_ACLS:
            yield (acl, f"acl is {get(acl.props, 'acl')!r}", "use acl 'private'")
    for pol in of_type(resources, "aws:s3/bucketPolicy:BucketPolicy"):
        for i in _public_statements(get(pol.props, "policy", default="{}")):
            yield (pol, f"policy Statement[{i}] allows Principal '*' without a condition",
                   "grant named principals only (an account, role or service)")


@rule("encryption-at-rest").check
def encrypted(resources: Sequence[Any]) -> Iterator[tuple[Any, str, str]]:
    sse = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    for b, name in _buckets(resources):
        if not any(get(rule_, "applyServerSideEncryptionByDefault", "sseAlgorithm")
                   for c in _for_bucket(resources, sse, name)
                   for rule_ in get(c.props, "rules", default=[])):
            yield (b, "has no default encryption",
                   "add an aws.s3.BucketServerSideEncryptionConfiguration for it (AES256 or "
                   "aws:kms)")
    for q in of_type(resources, QUEUE):
        if not (get(q.props, "sqsManagedSseEnabled") or get(q.props, "kmsMasterKeyId")):
            yield (q, "is not encrypted at rest",
                   "set sqs_managed_sse_enabled=True or kms_master_key_id")
    for s in of_type(resources, STREAM):
        if not get(s.props, "serverSideEncryption", "enabled"):
            yield (s, "is not encrypted at rest",
                   "set server_side_encryption={'enabled': True}")


@rule("tls-only").check
def tls_only(resources: Sequence[Any]) -> Iterator[tuple[Any, str, str]]:
    for b, name in _buckets(resources):
        guarded = any(
            get(stmt, "Effect") == "Deny" and _is_tls_guard(stmt)
            for p in _for_bucket(resources, "aws:s3/bucketPolicy:BucketPolicy", name)
            for stmt in _as_list(get(_document(get(p.props, "policy", default="{}")),
                                     "Statement", default=[])))
        if not guarded:
            yield (b, "accepts requests without TLS",
                   "add a bucket policy that denies s3:* on the bucket and its objects when "
                   "aws:SecureTransport is false")


# -- queues and functions --------------------------------------------------------------


def _function(resources: Sequence[Any], ref: Any) -> Any:
    """The function a reference (ARN or name) names."""
    for f in of_type(resources, FUNCTION):
        if ref in (get(f.props, "arn"), get(f.props, "name")):
            return f
    return None


def _redrive_target(queue: Any) -> str:
    policy = get(queue.props, "redrivePolicy")
    return str(get(_document(policy), "deadLetterTargetArn", default="")) if policy else ""


@rule("dead-letter").check
def dead_letters(resources: Sequence[Any]) -> Iterator[tuple[Any, str, str]]:
    queues = list(of_type(resources, QUEUE))
    targets = {_redrive_target(q) for q in queues} - {""}
    for q in queues:
        if not _redrive_target(q) and get(q.props, "arn") not in targets:
            yield (q, "has no redrive policy and is no other queue's dead-letter queue",
                   "give it redrive_policy={deadLetterTargetArn: <a DLQ's ARN>, "
                   "maxReceiveCount: N}")
    invoke_configs = list(of_type(resources,
                                  "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig"))
    for n in of_type(resources, NOTIFICATION):
        for target in get(n.props, "lambdaFunctions", default=[]):
            fn = _function(resources, get(target, "lambdaFunctionArn"))
            if fn is None or get(fn.props, "deadLetterConfig", "targetArn"):
                continue
            if any(get(c.props, "functionName") in (get(fn.props, "arn"), get(fn.props, "name"))
                   and get(c.props, "destinationConfig", "onFailure", "destination")
                   for c in invoke_configs):
                continue
            yield (fn, "is invoked asynchronously by an S3 notification without a "
                   "dead-letter destination",
                   "set dead_letter_config.target_arn, or an on-failure destination in an "
                   "aws.lambda_.FunctionEventInvokeConfig (or read the events from a queue "
                   "with a redrive policy)")


@rule("log-retention").check
def log_retention(resources: Sequence[Any]) -> Iterator[tuple[Any, str, str]]:
    groups = {get(g.props, "name"): g for g in of_type(resources, LOG_GROUP)}
    for name, g in groups.items():
        if not get(g.props, "retentionInDays"):
            yield (g, f"log group {name} keeps logs forever",
                   "set retention_in_days (e.g. 30)")
    for f in of_type(resources, FUNCTION):
        group = get(f.props, "loggingConfig", "logGroup") or f"/aws/lambda/{get(f.props, 'name')}"
        if group not in groups:
            yield (f, f"logs to {group}, which the stack does not create, so Lambda creates "
                   "it without retention",
                   f"create an aws.cloudwatch.LogGroup named {group} with retention_in_days")


@rule("no-plain-secrets").check
def plain_secrets(res: Any) -> Iterator[tuple[Any, str, str]]:
    if res.resource_type != FUNCTION:
        return
    variables = get(res.props, "environment", "variables", default={})
    for name in variables:
        value = variables[name]
        if not is_secret_name(name) or is_reference(value) or is_reference_map(name, value):
            continue
        yield (res, f"environment variable {name} holds a literal value",
               "keep the value in Secrets Manager and pass its name or ARN (pipelines: "
               "secrets: {name: <secret name or ARN>})")


@rule("timeout-below-visibility").check
def timeouts(resources: Sequence[Any]) -> Iterator[tuple[Any, str, str]]:
    queues = {get(q.props, "arn"): q for q in of_type(resources, QUEUE)}
    for m in of_type(resources, ESM):
        queue = queues.get(get(m.props, "eventSourceArn"))
        fn = _function(resources, get(m.props, "functionName"))
        if queue is None or fn is None:
            continue
        timeout = get(fn.props, "timeout", default=3)  # Lambda's defaults
        visibility = get(queue.props, "visibilityTimeoutSeconds", default=30)
        if timeout >= visibility:
            yield (queue, f"visibility timeout {visibility:g}s is not above the timeout "
                   f"{timeout:g}s of function {fn.name!r}, so a message reappears while "
                   "it is still being processed",
                   f"raise visibility_timeout_seconds to {6 * timeout:g} (6 x the function "
                   "timeout, AWS's guidance) or lower the function timeout")


# -- recursion -------------------------------------------------------------------------


def _static(prefix: str) -> str:
    """The part of a Firehose prefix before its first ``!{...}`` expression."""
    return prefix.split("!{", 1)[0]


def _writers(resources: Sequence[Any], queue_arn: Any) -> Iterator[Any]:
    """Roles of the functions that consume ``queue_arn``."""
    for m in of_type(resources, ESM):
        if get(m.props, "eventSourceArn") == queue_arn:
            fn = _function(resources, get(m.props, "functionName"))
            if fn is not None:
                yield get(fn.props, "role")


@rule("no-retrigger").check
def retrigger(resources: Sequence[Any]) -> Iterator[tuple[Any, str, str]]:
    roles = list(of_type(resources, "aws:iam/role:Role"))
    fix = ("write the sink and dead-letters to another bucket, or under a prefix that "
           "neither starts with the source prefix nor is a start of it")
    for n in of_type(resources, NOTIFICATION):
        bucket = get(n.props, "bucket")
        arn_head = f":s3:::{bucket}"
        for target in get(n.props, "queues", default=[]) + get(n.props, "lambdaFunctions",
                                                              default=[]):
            source = get(target, "filterPrefix", default="")
            for s in of_type(resources, STREAM):
                conf = get(s.props, "extendedS3Configuration", default={})
                if not str(get(conf, "bucketArn", default="")).endswith(arn_head):
                    continue
                for key in ("prefix", "errorOutputPrefix"):
                    written = _static(get(conf, key, default=""))
                    if prefixes_overlap(written, source):
                        yield (s, f"{key} s3://{bucket}/{written} overlaps the source "
                               f"s3://{bucket}/{source} of notification {n.name!r}, so every "
                               "delivery triggers it again", fix)
            role_refs = set(_writers(resources, get(target, "queueArn")))
            mine = {get(r.props, k) for r in roles if get(r.props, "arn") in role_refs
                    for k in ("name", "id", "arn")} - {None}
            for rp in of_type(resources, "aws:iam/rolePolicy:RolePolicy"):
                if get(rp.props, "role") not in mine:
                    continue
                for key in _put_prefixes(get(rp.props, "policy", default="{}"), bucket):
                    if prefixes_overlap(key, source):
                        yield (rp, f"lets the function write s3://{bucket}/{key}, under the "
                               f"source s3://{bucket}/{source} that triggers it", fix)


def _put_prefixes(doc: Any, bucket: str) -> Iterator[str]:
    for stmt in _as_list(get(_document(doc), "Statement", default=[])):
        if get(stmt, "Effect") != "Allow" or "s3:PutObject" not in _as_list(
                get(stmt, "Action", default=[])):
            continue
        for r in _as_list(get(stmt, "Resource", default=[])):
            head, _, key = str(r).partition(f":s3:::{bucket}/")
            if head.startswith("arn:") and _:
                yield key.split("*", 1)[0]
