"""IAM of the GCP component, and the rule its bindings obey.

The rule (checked by :func:`role_problems` when a binding is made, and in the tests):

- no primitive role (``roles/owner``, ``roles/editor``, ``roles/viewer``): each is
  thousands of permissions across every service;
- no admin role: the function reads, inserts and creates, it never manages;
- a binding is made on the resource it is about (bucket, topic, subscription, dataset,
  secret, service, service account). The project-level bindings are Firestore's
  (``datastore.viewer`` on the lookup database, ``datastore.user`` on the state
  database), which has no resource-level IAM: each carries an IAM condition naming the
  pipeline's database, so it grants nothing elsewhere.
"""

from __future__ import annotations

from typing import Any

import pulumi

__all__ = ["PRIMITIVE", "member", "role_problems", "service_agent"]

PRIMITIVE = frozenset({"roles/owner", "roles/editor", "roles/viewer"})


def member(email: pulumi.Input[str]) -> pulumi.Output[str]:
    """The IAM member of a service account."""
    return pulumi.Output.concat("serviceAccount:", email)


def service_agent(project_number: pulumi.Input[str], service: str) -> pulumi.Output[str]:
    """The IAM member of a Google service agent, e.g. ``gcp-sa-pubsub``."""
    return pulumi.Output.concat("serviceAccount:service-", project_number,
                                f"@{service}.iam.gserviceaccount.com")


def role_problems(role: str, *, project_level: bool = False,
                  condition: dict[str, Any] | None = None) -> list[str]:
    """Every breach of the module's rule by one binding."""
    problems = []
    if role in PRIMITIVE:
        problems.append(f"{role} is a primitive role")
    if role.endswith((".admin", "Admin")):
        problems.append(f"{role} is an admin role")
    if project_level and not (condition and condition.get("expression")):
        problems.append(f"{role} is granted on the project without a condition")
    return problems


def checked(role: str, *, project_level: bool = False,
            condition: dict[str, Any] | None = None) -> str:
    """``role``, after :func:`role_problems` found nothing (a bug here, never a user
    error: fail the plan loudly)."""
    problems = role_problems(role, project_level=project_level, condition=condition)
    if problems:
        raise AssertionError("IAM binding breaks the rule: " + "; ".join(problems))
    return role
