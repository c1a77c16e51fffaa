"""IAM policy documents for the AWS component, and the wildcard rule they obey.

The rule (checked by :func:`wildcard_problems` at plan time and in the tests):

- an ``Allow`` statement never has ``*`` in an Action;
- an ``Allow`` Resource has no ``*`` except as the last character of an ARN that names
  the children of one exact parent: S3 objects under a non-empty key prefix
  (``arn:aws:s3:::bucket/raw/orders/*``) or the log streams of one log group
  (``arn:aws:logs:region:account:log-group:/aws/lambda/fn:log-stream:*``). Object keys and
  Lambda's log stream names are chosen at run time, so IAM has no other way to name them;
  the parent is always exact;
- a ``Deny`` statement may use wildcards only when it is the TLS-only guard (condition
  ``aws:SecureTransport = false``): a wildcard there narrows access, it never grants it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import pulumi

__all__ = ["assume_role", "document", "statement", "tls_only", "wildcard_problems"]

_S3_PREFIX = re.compile(r"^arn:[a-z-]+:s3:::[a-z0-9][a-z0-9.-]*/[^*?]+\*$")
_LOG_STREAMS = re.compile(
    r"^arn:[a-z-]+:logs:[a-z0-9-]+:\d{12}:log-group:[^*?:]+:log-stream:\*$")


def statement(actions: Sequence[str], resources: Sequence[Any], sid: str | None = None,
              condition: dict[str, Any] | None = None) -> dict[str, Any]:
    """An Allow statement; ``resources`` may hold Outputs (the document is resolved later)."""
    out: dict[str, Any] = {"Effect": "Allow", "Action": sorted(actions),
                           "Resource": list(resources)}
    if sid:
        out["Sid"] = sid
    if condition:
        out["Condition"] = condition
    return out


def document(statements: Sequence[dict[str, Any]]) -> pulumi.Output[str]:
    """A policy document as a JSON string Output, refused if it breaks the wildcard rule."""
    def render(resolved: list[dict[str, Any]]) -> str:
        doc = {"Version": "2012-10-17", "Statement": resolved}
        problems = wildcard_problems(doc)
        if problems:  # a bug in this module, never a user error: fail the plan loudly
            raise AssertionError("policy breaks the wildcard rule: " + "; ".join(problems))
        return json.dumps(doc, sort_keys=True)

    return pulumi.Output.from_input(list(statements)).apply(render)


def assume_role(service: str, account: pulumi.Input[str] | None = None) -> pulumi.Output[str]:
    """Trust policy letting one AWS service assume the role, pinned to ``account`` when
    given (against the confused-deputy problem) with the condition that service documents:
    Firehose passes the account id as ``sts:ExternalId``; others set ``aws:SourceAccount``."""
    stmt: dict[str, Any] = {"Effect": "Allow", "Action": "sts:AssumeRole",
                            "Principal": {"Service": service}}
    if account is not None:
        key = "sts:ExternalId" if service == "firehose.amazonaws.com" else "aws:SourceAccount"
        stmt["Condition"] = {"StringEquals": {key: account}}
    return pulumi.Output.from_input(stmt).apply(
        lambda s: json.dumps({"Version": "2012-10-17", "Statement": [s]}, sort_keys=True))


def tls_only(bucket_arn: pulumi.Input[str]) -> pulumi.Output[str]:
    """Bucket policy refusing every request that is not made over TLS."""
    return pulumi.Output.from_input(bucket_arn).apply(lambda arn: json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [arn, f"{arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }],
    }, sort_keys=True))


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _is_tls_guard(stmt: dict[str, Any]) -> bool:
    cond = stmt.get("Condition") or {}
    return str((cond.get("Bool") or {}).get("aws:SecureTransport")).lower() == "false"


def wildcard_problems(doc: dict[str, Any] | str) -> list[str]:
    """Every breach of the wildcard rule in ``doc`` (a policy document or its JSON)."""
    if isinstance(doc, str):
        doc = json.loads(doc)
    problems: list[str] = []
    for i, stmt in enumerate(_as_list(doc.get("Statement", []))):
        where = f"Statement[{i}]"
        if "NotAction" in stmt or "NotResource" in stmt:
            problems.append(f"{where} uses NotAction/NotResource")
        actions = [str(a) for a in _as_list(stmt.get("Action", []))]
        resources = [str(r) for r in _as_list(stmt.get("Resource", []))]
        if stmt.get("Effect") == "Deny":
            if (any("*" in a for a in actions) or any("*" in r for r in resources)) \
                    and not _is_tls_guard(stmt):
                problems.append(f"{where}: wildcard in a Deny that is not the TLS guard")
            continue
        problems += [f"{where}: Action {a!r} has '*'" for a in actions if "*" in a]
        for r in resources:
            if "*" in r and not (_S3_PREFIX.match(r) or _LOG_STREAMS.match(r)):
                problems.append(f"{where}: Resource {r!r} has '*'")
    return problems
