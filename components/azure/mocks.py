"""Pulumi mocks that answer like Azure Resource Manager, for unit tests of programs that
use headwater.

``pulumi.runtime.set_mocks(AzureMocks(), preview=False)`` before running a program: each
registration gets the id and outputs ARM would return (``/subscriptions/<id>/
resourceGroups/<group>/providers/<Namespace>/<type>/<name>`` ids, nested the way ARM nests
containers, tables, hubs and databases; principal ids for system-assigned identities;
host names and endpoints), and ``getClientConfig`` answers for :data:`SUBSCRIPTION`.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import pulumi

__all__ = ["LOCATION", "SUBSCRIPTION", "TENANT", "AzureMocks", "azure_outputs"]

SUBSCRIPTION = "00000000-0000-4000-8000-000000000001"
TENANT = "00000000-0000-4000-8000-0000000000aa"
LOCATION = "westeurope"

# token -> (path below the group, with {input} names; the input naming the resource)
_PATHS: dict[str, tuple[str, str]] = {
    "storage:StorageAccount": ("Microsoft.Storage/storageAccounts/{accountName}", "accountName"),
    "storage:BlobContainer": ("Microsoft.Storage/storageAccounts/{accountName}/blobServices/"
                              "default/containers/{containerName}", "containerName"),
    "storage:Table": ("Microsoft.Storage/storageAccounts/{accountName}/tableServices/default/"
                      "tables/{tableName}", "tableName"),
    "storage:ManagementPolicy": ("Microsoft.Storage/storageAccounts/{accountName}/"
                                 "managementPolicies/{managementPolicyName}",
                                 "managementPolicyName"),
    "eventgrid:SystemTopic": ("Microsoft.EventGrid/systemTopics/{systemTopicName}",
                              "systemTopicName"),
    "eventgrid:SystemTopicEventSubscription": (
        "Microsoft.EventGrid/systemTopics/{systemTopicName}/eventSubscriptions/"
        "{eventSubscriptionName}", "eventSubscriptionName"),
    "eventhub:Namespace": ("Microsoft.EventHub/namespaces/{namespaceName}", "namespaceName"),
    "eventhub:EventHub": ("Microsoft.EventHub/namespaces/{namespaceName}/eventhubs/"
                          "{eventHubName}", "eventHubName"),
    "eventhub:ConsumerGroup": ("Microsoft.EventHub/namespaces/{namespaceName}/eventhubs/"
                               "{eventHubName}/consumergroups/{consumerGroupName}",
                               "consumerGroupName"),
    "web:AppServicePlan": ("Microsoft.Web/serverfarms/{name}", "name"),
    "web:WebApp": ("Microsoft.Web/sites/{name}", "name"),
    "operationalinsights:Workspace": ("Microsoft.OperationalInsights/workspaces/"
                                      "{workspaceName}", "workspaceName"),
    "applicationinsights:Component": ("Microsoft.Insights/components/{resourceName}",
                                      "resourceName"),
    "kusto:Cluster": ("Microsoft.Kusto/clusters/{clusterName}", "clusterName"),
    "kusto:ReadWriteDatabase": ("Microsoft.Kusto/clusters/{clusterName}/databases/"
                                "{databaseName}", "databaseName"),
    "kusto:Script": ("Microsoft.Kusto/clusters/{clusterName}/databases/{databaseName}/"
                     "scripts/{scriptName}", "scriptName"),
    "kusto:EventHubDataConnection": ("Microsoft.Kusto/clusters/{clusterName}/databases/"
                                     "{databaseName}/dataConnections/{dataConnectionName}",
                                     "dataConnectionName"),
}
_IDENTITIES = {"eventgrid:SystemTopic", "web:WebApp", "kusto:Cluster"}

_CALLS = {
    "azure-native:authorization:getClientConfig": {
        "clientId": "00000000-0000-4000-8000-0000000000c1", "objectId":
        "00000000-0000-4000-8000-0000000000c2", "subscriptionId": SUBSCRIPTION,
        "tenantId": TENANT},
}


def _principal(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.identity.headwater.test"))


def _autoname(name: str) -> str:
    # azure-native's auto-naming: the logical name plus a random suffix
    return f"{name}{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def azure_outputs(typ: str, name: str, inputs: dict[str, Any],
                  rid: str = "") -> tuple[str, dict[str, Any]]:
    """The id and state ARM would return for a resource of type ``typ``."""
    state = dict(inputs)
    token = typ.removeprefix("azure-native:")
    if rid:  # a read (.get): the id names the resource
        own = rid.rstrip("/").split("/")[-1]
        state.setdefault("name", own)
        if token in _IDENTITIES:
            state.setdefault("identity", {"type": "SystemAssigned", "principalId": _principal(rid),
                                          "tenantId": TENANT})
        if token == "kusto:Cluster":
            state.setdefault("uri", f"https://{own}.{LOCATION}.kusto.windows.net")
        return rid, state
    group = inputs.get("resourceGroupName") or _autoname(name)
    head = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}"
    if token == "resources:ResourceGroup":
        state["name"] = group
        return head, state
    if token == "authorization:RoleAssignment":
        rname = inputs.get("roleAssignmentName") or str(uuid.uuid5(uuid.NAMESPACE_DNS, name))
        state["name"] = rname
        return f"{inputs['scope']}/providers/Microsoft.Authorization/roleAssignments/{rname}", state
    if token == "storage:Blob":
        account, cont = inputs["accountName"], inputs["containerName"]
        blob = inputs.get("blobName") or name
        state.update(name=blob, url=f"https://{account}.blob.core.windows.net/{cont}/{blob}")
        return blob, state
    if token not in _PATHS:
        return f"{head}/providers/Unknown/{name}", state
    path, own_key = _PATHS[token]
    values = dict(inputs)
    values.setdefault(own_key, _autoname(name))
    values = {k: str(v).split("/")[-1] for k, v in values.items() if isinstance(v, str)}
    rid = f"{head}/providers/{path.format(**values)}"
    own = values[own_key]
    state["name"] = own
    if token in _IDENTITIES:
        state["identity"] = {"type": "SystemAssigned", "principalId": _principal(rid),
                             "tenantId": TENANT}
    if token == "storage:StorageAccount":
        state["primaryEndpoints"] = {
            kind: f"https://{own}.{kind}.core.windows.net/" for kind in
            ("blob", "table", "queue", "file", "dfs", "web")}
    elif token == "web:WebApp":
        state["defaultHostName"] = f"{own}.azurewebsites.net"
    elif token == "eventhub:Namespace":
        state["serviceBusEndpoint"] = f"https://{own}.servicebus.windows.net:443/"
    elif token == "applicationinsights:Component":
        key = str(uuid.uuid5(uuid.NAMESPACE_DNS, rid))
        state.update(instrumentationKey=key, connectionString=(
            f"InstrumentationKey={key};IngestionEndpoint=https://{LOCATION}-5.in."
            "applicationinsights.azure.com/"))
        # the id the query API (api.applicationinsights.io/v1/apps/{appId}) is called with
        state["appId"] = str(uuid.uuid5(uuid.NAMESPACE_URL, rid))
    elif token == "kusto:Cluster":
        state.update(uri=f"https://{own}.{LOCATION}.kusto.windows.net",
                     dataIngestionUri=f"https://ingest-{own}.{LOCATION}.kusto.windows.net")
    elif token == "kusto:ReadWriteDatabase":
        state["name"] = f"{values['clusterName']}/{own}"  # ARM names nested resources so
    return rid, state


class AzureMocks(pulumi.runtime.Mocks):
    """Answers registrations with :func:`azure_outputs`; counts them in ``count``."""

    def __init__(self) -> None:
        self.count = 0

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.count += 1
        return azure_outputs(args.typ, args.name, dict(args.inputs), args.resource_id or "")

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        try:
            return _CALLS[args.token]
        except KeyError:
            raise KeyError(f"AzureMocks has no answer for the provider function {args.token}") \
                from None
