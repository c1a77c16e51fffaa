"""``headwater:azure:Pipeline``: one pipeline spec as Blob -> Event Grid -> Event Hub ->
Functions -> Event Hub -> Data Explorer.

Every child has ``parent=self``, so options given to the component (providers, protect,
transforms, aliases) reach all of them. Children are attributes (``pipeline.account``,
``pipeline.function`` ...) for programs that attach more; ``overrides.azure.<child>`` in
the spec is merged into that child's arguments (see :data:`~.checks.CHILDREN`).

Each blob version is claimed in a Table Storage table of the data account (the claims
table: lease, checkpoints, done; ``runtimes/azure/idempotency.py``) that only the function
may write (Storage Table Data Contributor on that table alone). The claim's lease is the
function timeout plus a margin, and the timeout is an app setting
(``AzureFunctionsJobHost__functionTimeout``, overriding host.json with the same value) so
that the policy pack sees both.

Identity everywhere: the function, the Event Grid system topic and the Data Explorer
cluster use their system-assigned identities, granted data-plane roles scoped to single
containers, tables and hubs (:mod:`.policy`). No app setting holds a key or a connection
string with a secret in it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_azure_native as az

from headwater.spec import PipelineSpec

from ..common import PlanError, merge_args
from . import policy, storage
from .checks import (
    RAW,
    check_pipeline,
    cluster_ref,
    global_name,
    lookup_keys,
    secret_ref,
    table_name,
)

__all__ = ["DEFAULT_LOCATION", "Pipeline", "PipelineArgs", "app_settings_names"]

DEFAULT_LOCATION = "westeurope"
DEADLETTER = "deadletter"
EVENTGRID_DEADLETTER = "eventgrid-deadletter"
PACKAGES = "function-packages"
NOTIFICATIONS, PROCESSED = "notifications", "processed"
FUNCTION_GROUP, KUSTO_GROUP = "function", "dataexplorer"
EVENT_TYPES = ["Microsoft.Storage.BlobCreated"]
# Event Grid retries a delivery up to 30 times within a day, then dead-letters it.
RETRY = {"max_delivery_attempts": 30, "event_time_to_live_in_minutes": 1440}
LOG_RETENTION_DAYS = 30
CLAIMS = "claims"  # the claims table: hw<pipeline>claims
LEASE_MARGIN_S = 30  # a claim outlasts the function timeout by this much
HUB_RETENTION_DAYS = 7  # replay window of both hubs (the Standard tier's maximum)


@dataclass
class PipelineArgs:
    """Arguments of :class:`Pipeline`.

    ``artifact`` is the Function App's zip (a path or a :class:`pulumi.Archive`);
    ``resource_group`` names an existing resource group to create everything in (else one
    is created per pipeline); ``schema`` is the Event Grid delivery schema
    (``CloudEventSchemaV1_0`` or ``EventGridSchema``: the function reads both).
    """

    spec: PipelineSpec
    artifact: str | os.PathLike[str] | pulumi.Archive
    python: str = "3.12"
    location: str = DEFAULT_LOCATION
    resource_group: str | None = None
    schema: str = "CloudEventSchemaV1_0"
    tracing: bool = True  # Application Insights dependency tracking of the host


def secret_setting(logical: str) -> str:
    """The app setting the runtime reads a secret from (a Key Vault reference)."""
    return "HEADWATER_SECRET_" + re.sub(r"[-/]", "_", logical).upper()


def app_settings_names(settings: list[dict[str, Any]]) -> list[str]:
    return [s["name"] for s in settings]


class Pipeline(pulumi.ComponentResource):
    """One headwater pipeline on Azure. See README.md, "Azure", for what it creates."""

    def __init__(self, name: str, args: PipelineArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("headwater:azure:Pipeline", name, None, opts)
        spec = args.spec
        check_pipeline(spec)
        self.spec = spec
        self._name = name
        self._overrides: dict[str, dict[str, Any]] = dict(spec.overrides.get("azure", {}))
        stack = pulumi.get_stack()
        loc = args.location
        self._subscription = az.authorization.get_client_config_output(
            opts=pulumi.InvokeOutputOptions(parent=self)).subscription_id

        self._group(args, name, loc)
        self._storage(name, stack, loc)
        self._events(name, stack, loc, args.schema)
        self._lookups(name)
        self._claims(name)
        self._monitoring(name, stack, loc)
        self._function(name, stack, loc, args)
        self._sink(name, stack, loc)
        self._grants(name)

        db = self.warehouse.database.name.apply(lambda n: n.split("/")[-1])
        table = spec.sink.table
        self.kql_query = db.apply(
            lambda d: f"database('{d}').['{table}'] | where ingestion_time() > ago(1d) "
                      f"| take 10")
        self.register_outputs({
            "account_name": self.account.name, "function_app_name": self.function.name,
            "namespace_name": self.namespace.name,
            "notifications_hub": self.notifications_hub.name,
            "processed_hub": self.processed_hub.name, "database_name": db,
            "cluster_uri": self.warehouse.cluster.uri, "kql_query": self.kql_query})

    # -- parts ----------------------------------------------------------------------

    def _group(self, args: PipelineArgs, name: str, loc: str) -> None:
        if args.resource_group:
            self.resource_group = None
            self.group_name: pulumi.Input[str] = args.resource_group
        else:
            self.resource_group = self._make("resource_group", az.resources.ResourceGroup,
                                             f"{name}-rg", {"location": loc})
            self.group_name = self.resource_group.name

    def _storage(self, name: str, stack: str, loc: str) -> None:
        """The data account (raw, dead-letters; identity only) and the Functions host's
        account (triggers' leases and checkpoints, the app package)."""
        spec, group = self.spec, self.group_name
        self.account = storage.account(
            self._make, "storage_account", f"{name}-storage",
            account_name=global_name("data", stack, spec.name, 24, dashes=False),
            group=group, location=loc, shared_key=False)
        self.raw = storage.container(self._make, f"{name}-raw", RAW, self.account, group)
        dl_name = spec.deadletter.bucket or DEADLETTER
        self.deadletter = self.raw if dl_name == RAW else storage.container(
            self._make, f"{name}-deadletter", dl_name, self.account, group)
        self.eventgrid_deadletter = storage.container(
            self._make, f"{name}-eventgrid-deadletter", EVENTGRID_DEADLETTER, self.account, group)
        self.lifecycle = storage.raw_retention(
            self._make, f"{name}-retention", self.account, group, container=RAW,
            prefix=spec.source.prefix, days=spec.retention_days)
        # Shared keys stay on for this account only because Pulumi's Blob resource uploads
        # the package with the account key (pulumi-azure-native#2015); the function itself
        # reaches it with its identity (AzureWebJobsStorage__accountName).
        self.host_account = storage.account(
            self._make, "host_account", f"{name}-host",
            account_name=global_name("host", stack, spec.name, 24, dashes=False),
            group=group, location=loc, shared_key=True)
        self.packages = storage.container(self._make, f"{name}-packages", PACKAGES,
                                          self.host_account, group)

    def _events(self, name: str, stack: str, loc: str, schema: str) -> None:
        spec, group = self.spec, self.group_name
        self.namespace = self._make("namespace", az.eventhub.Namespace, f"{name}-events", {
            "namespace_name": global_name("ns", stack, spec.name, 50),
            "resource_group_name": group, "location": loc,
            "sku": {"name": "Standard", "tier": "Standard", "capacity": 1},
            "disable_local_auth": True, "minimum_tls_version": "1.2"})
        hub = {"namespace_name": self.namespace.name, "resource_group_name": group,
               "partition_count": 2, "message_retention_in_days": HUB_RETENTION_DAYS}
        self.notifications_hub = self._make(
            "notifications_hub", az.eventhub.EventHub, f"{name}-notifications",
            {**hub, "event_hub_name": NOTIFICATIONS})
        self.processed_hub = self._make(
            "processed_hub", az.eventhub.EventHub, f"{name}-processed",
            {**hub, "event_hub_name": PROCESSED})
        self.consumer_group = self._make(None, az.eventhub.ConsumerGroup, f"{name}-function-cg", {
            "consumer_group_name": FUNCTION_GROUP, "event_hub_name": self.notifications_hub.name,
            "namespace_name": self.namespace.name, "resource_group_name": group})
        self.kusto_consumer_group = self._make(None, az.eventhub.ConsumerGroup,
                                               f"{name}-dataexplorer-cg", {
            "consumer_group_name": KUSTO_GROUP, "event_hub_name": self.processed_hub.name,
            "namespace_name": self.namespace.name, "resource_group_name": group})

        self.system_topic = self._make("system_topic", az.eventgrid.SystemTopic, f"{name}-topic", {
            "resource_group_name": group, "location": loc, "source": self.account.id,
            "topic_type": "Microsoft.Storage.StorageAccounts",
            "identity": {"type": "SystemAssigned"}})
        topic_principal = self.system_topic.identity.apply(lambda i: i.principal_id)
        self._topic_send = policy.assign(
            self._make, f"{name}-topic-sends-notifications", role="Azure Event Hubs Data Sender",
            principal_id=topic_principal, scope=self.notifications_hub.id,
            subscription=self._subscription)
        self._topic_deadletter = policy.assign(
            self._make, f"{name}-topic-writes-deadletters", role="Storage Blob Data Contributor",
            principal_id=topic_principal, scope=self.eventgrid_deadletter.id,
            subscription=self._subscription)
        src = spec.source
        event_filter: dict[str, Any] = {
            "included_event_types": list(EVENT_TYPES),
            "subject_begins_with": f"/blobServices/default/containers/{RAW}/blobs/{src.prefix}",
            # a zero-byte "folder" placeholder never needs the function
            # (union-typed inputs take their Args class: a plain dict's keys would not be
            # translated to the wire names)
            "advanced_filters": [az.eventgrid.NumberGreaterThanAdvancedFilterArgs(
                operator_type="NumberGreaterThan", key="data.contentLength", value=0)],
        }
        if src.suffix:
            event_filter["subject_ends_with"] = src.suffix
        identity = {"type": "SystemAssigned"}
        self.subscription = self._make(
            "subscription", az.eventgrid.SystemTopicEventSubscription, f"{name}-blob-created", {
                "resource_group_name": group, "system_topic_name": self.system_topic.name,
                "event_subscription_name": f"{spec.name}-blob-created",
                "event_delivery_schema": schema,
                "filter": event_filter,
                "delivery_with_resource_identity": {
                    "identity": identity,
                    "destination": az.eventgrid.EventHubEventSubscriptionDestinationArgs(
                        endpoint_type="EventHub", resource_id=self.notifications_hub.id)},
                "dead_letter_with_resource_identity": {
                    "identity": identity,
                    "dead_letter_destination": {
                        "endpoint_type": "StorageBlob", "resource_id": self.account.id,
                        "blob_container_name": EVENTGRID_DEADLETTER}},
                "retry_policy": dict(RETRY),
            }, depends_on=[self._topic_send, self._topic_deadletter])

    def _lookups(self, name: str) -> None:
        self.lookup_tables: dict[str, az.storage.Table] = {}
        for table in lookup_keys(self.spec):
            self.lookup_tables[table] = self._make(
                "lookup_table", az.storage.Table, f"{name}-lookup-{table}", {
                    "table_name": table_name(self.spec.name, table),
                    "account_name": self.account.name, "resource_group_name": self.group_name})

    def _claims(self, name: str) -> None:
        """The claims table: one entity per blob version (runtimes/azure/idempotency.py)."""
        claims = table_name(self.spec.name, CLAIMS)
        clash = [t for t in self.lookup_tables if table_name(self.spec.name, t) == claims]
        if clash:
            raise PlanError(f"pipeline {self.spec.name!r}: lookup table {clash[0]!r} would be "
                            f"Table Storage table {claims!r}, the pipeline's claims table; "
                            "rename the lookup table.")
        self.claims_table = self._make("claims_table", az.storage.Table, f"{name}-claims", {
            "table_name": claims, "account_name": self.account.name,
            "resource_group_name": self.group_name})

    def _monitoring(self, name: str, stack: str, loc: str) -> None:
        group = self.group_name
        self.workspace = self._make("workspace", az.operationalinsights.Workspace, f"{name}-logs", {
            "resource_group_name": group, "location": loc, "sku": {"name": "PerGB2018"},
            "retention_in_days": LOG_RETENTION_DAYS})
        # Entra-only ingestion: no instrumentation key is enough to write telemetry.
        self.insights = self._make("insights", az.applicationinsights.Component, f"{name}-insights", {
            "resource_group_name": group, "location": loc, "kind": "web",
            "application_type": "web", "ingestion_mode": "LogAnalytics",
            "workspace_resource_id": self.workspace.id, "disable_local_auth": True,
            "retention_in_days": LOG_RETENTION_DAYS})

    def _function(self, name: str, stack: str, loc: str, args: PipelineArgs) -> None:
        spec, group = self.spec, self.group_name
        self.package = self._make(None, az.storage.Blob, f"{name}-package", {
            "account_name": self.host_account.name, "container_name": self.packages.name,
            "resource_group_name": group, "type": "Block",
            "blob_name": f"{spec.name}-function.zip",
            "source": _asset(args.artifact), "content_type": "application/zip"})
        self.plan = self._make("plan", az.web.AppServicePlan, f"{name}-plan", {
            "resource_group_name": group, "location": loc, "kind": "functionapp",
            "reserved": True, "sku": {"name": "Y1", "tier": "Dynamic"}})
        fqdn = pulumi.Output.concat(self.namespace.name, ".servicebus.windows.net")
        settings: list[dict[str, Any]] = [
            {"name": "FUNCTIONS_EXTENSION_VERSION", "value": "~4"},
            {"name": "FUNCTIONS_WORKER_RUNTIME", "value": "python"},
            # identity-based host storage: an account name, no key
            {"name": "AzureWebJobsStorage__accountName", "value": self.host_account.name},
            {"name": "WEBSITE_RUN_FROM_PACKAGE", "value": self.package.url},
            {"name": "WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID", "value": "SystemAssigned"},
            {"name": "APPLICATIONINSIGHTS_CONNECTION_STRING",
             "value": self.insights.connection_string},
            {"name": "APPLICATIONINSIGHTS_AUTHENTICATION_STRING", "value": "Authorization=AAD"},
            # the trigger's identity-based connection "EVENTHUB"
            {"name": "EVENTHUB__fullyQualifiedNamespace", "value": fqdn},
            {"name": "HEADWATER_PIPELINE", "value": spec.name},
            # the metrics' dimensions (runtimes/core/metrics.py)
            {"name": "HEADWATER_PULUMI_PROJECT", "value": pulumi.get_project()},
            {"name": "HEADWATER_STACK", "value": stack},
            {"name": "HEADWATER_TRACING", "value": "1" if args.tracing else "0"},
            # the host's dependency tracking (host.json logging.applicationInsights), the
            # spans of blob, Event Hubs and Table calls under each invocation's operation
            {"name": "AzureFunctionsJobHost__logging__applicationInsights__"
                     "enableDependencyTracking", "value": "true" if args.tracing else "false"},
            {"name": "HEADWATER_NOTIFICATIONS_HUB", "value": self.notifications_hub.name},
            {"name": "HEADWATER_CONSUMER_GROUP", "value": FUNCTION_GROUP},
            {"name": "HEADWATER_EVENTHUB_NAMESPACE", "value": fqdn},
            {"name": "HEADWATER_PROCESSED_HUB", "value": self.processed_hub.name},
            {"name": "HEADWATER_BLOB_ACCOUNT_URL",
             "value": self.account.primary_endpoints.apply(lambda e: e.blob)},
            {"name": "HEADWATER_TABLE_ACCOUNT_URL",
             "value": self.account.primary_endpoints.apply(lambda e: e.table)},
            {"name": "HEADWATER_RAW_CONTAINER", "value": RAW},
            {"name": "HEADWATER_DEADLETTER_CONTAINER", "value": self.deadletter.name},
            {"name": "HEADWATER_DEADLETTER_PREFIX", "value": spec.deadletter.prefix},
            # Output.all() of no outputs is a list: no tables is written as "{}"
            {"name": "HEADWATER_LOOKUP_TABLES", "value": pulumi.Output.all(
                **{t: tb.name for t, tb in self.lookup_tables.items()}).apply(
                lambda names: json.dumps(dict(names), sort_keys=True))
                if self.lookup_tables else "{}"},
            {"name": "HEADWATER_LOOKUP_KEYS", "value": json.dumps(lookup_keys(spec),
                                                                  sort_keys=True)},
            {"name": "HEADWATER_IDEMPOTENCY_TABLE", "value": self.claims_table.name},
            # the host's timeout (host.json has the same; an app setting wins and is what
            # the policy pack checks the lease against) and the claim's lease beyond it
            {"name": "AzureFunctionsJobHost__functionTimeout",
             "value": timespan(spec.limits.timeout_s)},
            {"name": "HEADWATER_LEASE_S", "value": str(spec.limits.timeout_s + LEASE_MARGIN_S)},
        ]
        for logical, ref in sorted(spec.secrets.items()):
            vault, secret = secret_ref(spec.name, logical, ref)
            # a Key Vault reference: the platform resolves it with the app's identity
            settings.append({"name": secret_setting(logical), "value":
                             f"@Microsoft.KeyVault(SecretUri=https://{vault}.vault.azure.net/"
                             f"secrets/{secret}/)"})
        self.app_settings = settings
        # exported as the stack output `function_settings` (`headwater replay` runs with
        # it): headwater's own settings, without the Key Vault references of secrets
        self.function_settings = {
            s["name"]: s["value"] for s in settings if s["name"].startswith("HEADWATER_")
            and not s["name"].startswith(secret_setting(""))}
        self.function = self._make("function", az.web.WebApp, f"{name}-function", {
            "name": global_name("fn", stack, spec.name, 60),
            "resource_group_name": group, "location": loc, "kind": "functionapp,linux",
            "reserved": True, "server_farm_id": self.plan.id, "https_only": True,
            "identity": {"type": "SystemAssigned"},
            "site_config": {
                "linux_fx_version": f"PYTHON|{args.python}",
                "app_settings": settings,
                "min_tls_version": "1.2", "ftps_state": "Disabled",
                "function_app_scale_limit": spec.limits.max_concurrency,
            },
        })
        self.principal_id = self.function.identity.apply(lambda i: i.principal_id)

    def _sink(self, name: str, stack: str, loc: str) -> None:
        spec = self.spec
        self.warehouse = storage.warehouse(
            self._make, name, pipeline=spec.name, table=spec.sink.table,
            columns=spec.sink.columns, group=self.group_name, location=loc,
            cluster_name=global_name("adx", stack, spec.name, 22, dashes=False),
            existing=cluster_ref(spec), parent=self)
        cluster = self.warehouse.cluster
        kusto_principal = cluster.identity.apply(lambda i: i.principal_id if i else None)
        self._kusto_reads = policy.assign(
            self._make, f"{name}-dataexplorer-reads-processed",
            role="Azure Event Hubs Data Receiver", principal_id=kusto_principal,
            scope=self.processed_hub.id, subscription=self._subscription)
        self.data_connection = self._make(
            "data_connection", az.kusto.EventHubDataConnection, f"{name}-ingestion", {
                "cluster_name": cluster.name, "resource_group_name": self.warehouse.cluster_group,
                "database_name": self.warehouse.database.name.apply(lambda n: n.split("/")[-1]),
                "data_connection_name": f"{spec.name}-processed", "kind": "EventHub",
                "location": loc, "event_hub_resource_id": self.processed_hub.id,
                "consumer_group": self.kusto_consumer_group.name,
                "table_name": spec.sink.table, "mapping_rule_name": storage.mapping_name(
                    spec.sink.table),
                "data_format": "JSON", "managed_identity_resource_id": cluster.id},
            depends_on=[self.warehouse.script, self._kusto_reads])

    def _grants(self, name: str) -> None:
        """The function's roles, each on one resource."""
        grant = [
            ("reads-raw", "Storage Blob Data Reader", self.raw.id),
            ("writes-deadletters", "Storage Blob Data Contributor", self.deadletter.id),
            ("receives-notifications", "Azure Event Hubs Data Receiver", self.notifications_hub.id),
            ("sends-processed", "Azure Event Hubs Data Sender", self.processed_hub.id),
            ("reads-package", "Storage Blob Data Reader", self.packages.id),
            # the Functions host keeps trigger leases/checkpoints (blobs) and its own queues
            # in this account, which holds nothing else of the pipeline's
            ("host-blobs", "Storage Blob Data Owner", self.host_account.id),
            ("host-queues", "Storage Queue Data Contributor", self.host_account.id),
            ("publishes-telemetry", "Monitoring Metrics Publisher", self.insights.id),
        ]
        if self.deadletter is self.raw:
            grant[0] = ("reads-raw", "Storage Blob Data Contributor", self.raw.id)
            del grant[1]
        grant += [(f"reads-lookup-{t}", "Storage Table Data Reader", tb.id)
                  for t, tb in self.lookup_tables.items()]
        grant.append(("writes-claims", "Storage Table Data Contributor", self.claims_table.id))
        for logical, ref in sorted(self.spec.secrets.items()):
            grant.append((f"reads-secret-{logical}", "Key Vault Secrets User", ref))
        self.role_assignments = {
            key: policy.assign(self._make, f"{name}-function-{key}", role=role,
                               principal_id=self.principal_id, scope=scope,
                               subscription=self._subscription)
            for key, role, scope in grant}

    def _make(self, key: str | None, cls: type, name: str, args: dict[str, Any],
              **opts: Any) -> Any:
        """Create a child with ``parent=self`` and ``overrides.azure.<key>`` merged in."""
        merged = merge_args(args, self._overrides.get(key) if key else None)
        return cls(name, opts=pulumi.ResourceOptions(parent=self, **opts), **merged)


def timespan(seconds: int) -> str:
    """host.json's ``hh:mm:ss``."""
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _asset(artifact: Any) -> pulumi.Asset | pulumi.Archive:
    if isinstance(artifact, (pulumi.Asset, pulumi.Archive)):
        return artifact
    # the zip as one blob (a FileAsset, not an archive: the host mounts the zip itself)
    return pulumi.FileAsset(os.fspath(artifact))
