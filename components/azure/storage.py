"""Storage and the warehouse sink of the Azure component: storage accounts, containers,
the raw-copy lifecycle rule, lookup tables, and Data Explorer (cluster, database, table,
JSON ingestion mapping, Event Hub data connection).

Functions here create children through the component's ``make`` callable, which sets
``parent`` and merges the pipeline's overrides, so they stay plain functions.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_azure_native as az

from .checks import kusto_type

__all__ = ["DEV_SKU", "HEADWATER_ID", "Warehouse", "account", "container", "kusto_script",
           "mapping_name", "raw_retention", "warehouse"]

Make = Callable[..., Any]

# The cheapest Data Explorer SKU: one node, no SLA (see README, "Azure", for its cost).
DEV_SKU = {"name": "Dev(No SLA)_Standard_E2a_v4", "tier": "Basic", "capacity": 1}
HEADWATER_ID = "_headwater_id"  # the stable record id every runtime writes
SOFT_DELETE = "P365D"
HOT_CACHE = "P31D"


def account(make: Make, key: str, name: str, *, account_name: str, group: pulumi.Input[str],
            location: str, shared_key: bool) -> az.storage.StorageAccount:
    """A StorageV2 account: no public blob access, TLS 1.2, HTTPS only, no hierarchical
    namespace (Event Grid's BlobCreated and the Functions host's leases both want plain
    blob storage). ``shared_key=False`` refuses account keys and SAS signed with them."""
    return make(key, az.storage.StorageAccount, name, {
        "account_name": account_name, "resource_group_name": group, "location": location,
        "kind": "StorageV2", "sku": {"name": "Standard_LRS"},
        "allow_blob_public_access": False, "minimum_tls_version": "TLS1_2",
        "enable_https_traffic_only": True, "allow_shared_key_access": shared_key,
        "default_to_o_auth_authentication": not shared_key,
        "is_hns_enabled": False,
        "encryption": {"key_source": "Microsoft.Storage",
                       "services": {"blob": {"enabled": True, "key_type": "Account"},
                                    "table": {"enabled": True, "key_type": "Account"}}},
    })


def container(make: Make, name: str, container_name: str, acct: az.storage.StorageAccount,
              group: pulumi.Input[str]) -> az.storage.BlobContainer:
    return make(None, az.storage.BlobContainer, name, {
        "container_name": container_name, "account_name": acct.name,
        "resource_group_name": group, "public_access": "None"})


def raw_retention(make: Make, name: str, acct: az.storage.StorageAccount,
                  group: pulumi.Input[str], *, container: str, prefix: str,
                  days: int) -> az.storage.ManagementPolicy:
    """Delete raw blobs under ``container/prefix`` ``days`` after their last change."""
    return make("lifecycle", az.storage.ManagementPolicy, name, {
        "account_name": acct.name, "resource_group_name": group,
        "management_policy_name": "default",
        "policy": {"rules": [{
            "name": "expire-raw-copies", "enabled": True, "type": "Lifecycle",
            "definition": {
                "filters": {"blob_types": ["blockBlob"], "prefix_match": [f"{container}/{prefix}"]},
                "actions": {"base_blob": {"delete": {"days_after_modification_greater_than": days}}},
            }}]},
    })


def mapping_name(table: str) -> str:
    return f"{table}_json"


def kusto_script(pipeline: str, table: str, columns: Mapping[str, str]) -> str:
    """KQL control commands creating the table, its JSON ingestion mapping and its
    de-duplicating function (idempotent: ``.create-merge`` adds columns,
    ``.create-or-alter`` replaces the mapping and the function)."""
    cols = {**{c: kusto_type(c, t, pipeline) for c, t in columns.items()}, HEADWATER_ID: "string"}
    schema = ", ".join(f"['{c}']:{t}" for c, t in cols.items())
    mapping = json.dumps([{"column": c, "path": f"$['{c}']", "datatype": t}
                          for c, t in cols.items()], separators=(",", ":"))
    return (f".create-merge table ['{table}'] ({schema})\n\n"
            f".create-or-alter table ['{table}'] ingestion json mapping "
            f"'{mapping_name(table)}' '{mapping}'\n\n"
            f"{dedup_function(table)}")


def dedup_function(table: str) -> str:
    """The stored function ``<table>_dedup()``: one row per ``_headwater_id``. Event Hubs
    has no idempotent send: a function killed between the hub taking a batch and its
    checkpoint resends that batch with the same ids; readers who must never see a copy
    query this function (for a large table, a materialized view with the same body)."""
    return (f".create-or-alter function with (folder = 'headwater', docstring = "
            f"'{table}, one row per {HEADWATER_ID}') ['{table}_dedup']() "
            f"{{ ['{table}'] | summarize take_any(*) by ['{HEADWATER_ID}'] }}")


@dataclass
class Warehouse:
    """What :func:`warehouse` created (``cluster`` is read, not created, when existing)."""

    cluster: az.kusto.Cluster
    cluster_group: pulumi.Input[str]
    database: az.kusto.ReadWriteDatabase
    script: az.kusto.Script
    created: bool


def warehouse(make: Make, name: str, *, pipeline: str, table: str, columns: Mapping[str, str],
              group: pulumi.Input[str], location: str, cluster_name: str,
              existing: tuple[str, str] | None, parent: pulumi.Resource) -> Warehouse:
    """The Data Explorer cluster (dev SKU, auto-stop; or an existing one), database, and the
    table with its JSON ingestion mapping. The Event Hub data connection is made by the
    pipeline once the cluster may read the processed hub."""
    if existing is not None:
        cluster_group, cname = existing
        cluster = az.kusto.Cluster.get(
            f"{name}-cluster", pulumi.Output.concat(
                "/subscriptions/", az.authorization.get_client_config_output(
                    opts=pulumi.InvokeOutputOptions(parent=parent)).subscription_id,
                "/resourceGroups/", cluster_group, "/providers/Microsoft.Kusto/clusters/", cname),
            opts=pulumi.ResourceOptions(parent=parent))
        created = False
    else:
        cluster_group = group
        cluster = make("cluster", az.kusto.Cluster, f"{name}-cluster", {
            "cluster_name": cluster_name, "resource_group_name": group, "location": location,
            "sku": dict(DEV_SKU), "identity": {"type": "SystemAssigned"},
            "enable_auto_stop": True, "enable_disk_encryption": True,
            "public_network_access": "Enabled"})
        created = True
    database = make("database", az.kusto.ReadWriteDatabase, f"{name}-database", {
        "cluster_name": cluster.name, "resource_group_name": cluster_group,
        "database_name": pipeline, "kind": "ReadWrite", "location": location,
        "soft_delete_period": SOFT_DELETE, "hot_cache_period": HOT_CACHE})
    script = make(None, az.kusto.Script, f"{name}-table", {
        "cluster_name": cluster.name, "database_name": database.name.apply(
            lambda n: n.split("/")[-1]),
        "resource_group_name": cluster_group, "script_name": f"{table}-schema",
        "script_content": kusto_script(pipeline, table, columns),
        "continue_on_errors": False})
    return Warehouse(cluster, cluster_group, database, script, created)
