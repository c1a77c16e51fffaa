"""Role assignments of the Azure component, and the scope rule they obey.

The rule (checked by :func:`scope_problems` when an assignment is made and again in the
tests): every role is one of :data:`ROLES` (data-plane roles only, never Owner,
Contributor or a ``*`` role) and every scope names one resource below a resource
group: a container, a table, an event hub, a Key Vault secret, a storage account that
only the function host uses, a Data Explorer database. A subscription or a resource group
is never a scope.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_azure_native as az

from headwater.policies.azure import assignment_problems

__all__ = ["ROLES", "assign", "role_definition_id", "scope_problems"]

# Azure built-in role ids (the same in every tenant).
ROLES = {
    "Storage Blob Data Reader": "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
    "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Storage Table Data Reader": "76199698-9eea-4c19-bc75-cec21354c6b6",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Azure Event Hubs Data Receiver": "a638d3c7-ab3a-418d-83e6-5f17a39d4fde",
    "Azure Event Hubs Data Sender": "2b629674-e913-4c01-ae53-ef4638d8f975",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
}


def role_definition_id(subscription: pulumi.Input[str], role: str) -> pulumi.Output[str]:
    return pulumi.Output.concat("/subscriptions/", subscription,
                                "/providers/Microsoft.Authorization/roleDefinitions/",
                                ROLES[role])


def scope_problems(role: str, scope: str) -> list[str]:
    """Every breach of the scope rule by an assignment of ``role`` at ``scope`` (the
    policy pack's own rule, :func:`headwater.policies.azure.assignment_problems`, plus
    headwater's list of roles)."""
    if role not in ROLES:
        return [f"role {role!r} is not one of the data-plane roles headwater grants"]
    return assignment_problems(ROLES[role], scope)


def assign(make: Callable[..., Any], name: str, *, role: str, principal_id: pulumi.Input[str],
           scope: pulumi.Input[str], subscription: pulumi.Input[str],
           depends_on: list[Any] | None = None) -> az.authorization.RoleAssignment:
    """Grant ``role`` to a system-assigned identity at exactly ``scope``.

    The assignment's name (a GUID in Azure) derives from the project, stack and Pulumi
    name, so it is stable across runs and unique per stack, pipeline and grant.
    """
    def checked(s: str) -> str:
        problems = scope_problems(role, s)
        if problems:  # a bug in the component, never a user error: fail the plan loudly
            raise AssertionError("role assignment breaks the scope rule: " + "; ".join(problems))
        return s

    return make(None, az.authorization.RoleAssignment, name, {
        "role_assignment_name": str(uuid.uuid5(
            uuid.NAMESPACE_URL, f"headwater:{pulumi.get_project()}:{pulumi.get_stack()}:{name}")),
        "principal_id": principal_id,
        "principal_type": "ServicePrincipal",
        "role_definition_id": role_definition_id(subscription, role),
        "scope": pulumi.Output.from_input(scope).apply(checked),
        "description": f"headwater: {role}",
    }, **({"depends_on": depends_on} if depends_on else {}))
