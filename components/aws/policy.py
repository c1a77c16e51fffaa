"""IAM policy documents for the AWS component, and the wildcard rule they obey.

The rule is :func:`headwater.policies.aws.wildcard_problems`, written once: this module
refuses a document that breaks it when it is rendered, ``headwater plan`` and the
CrossGuard pack (``policy/``) check every policy document of a stack with it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pulumi

from headwater.policies.aws import wildcard_problems

__all__ = ["assume_role", "document", "statement", "tls_only", "wildcard_problems"]


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
