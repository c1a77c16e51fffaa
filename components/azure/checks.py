"""Plan-time checks of pipeline specs for Azure, run before any resource is created, and
the names Azure wants spelled its way (globally unique, lower-case, length-limited)."""

from __future__ import annotations

import hashlib
import re

import pulumi_azure_native as az

from headwater.spec import PipelineSpec, StackConfig

from ..checks import check_stack as neutral_check_stack
from ..common import Location, PlanError, validate_overrides

__all__ = ["CHILDREN", "MAX_TIMEOUT_S", "RAW", "RULES", "AzureRules", "check_pipeline",
           "check_stack", "cluster_ref", "global_name", "kusto_type", "locations",
           "lookup_keys", "table_name"]

# Children that take ``overrides.azure.<key>``; role assignments take none on purpose.
CHILDREN: dict[str, type] = {
    "resource_group": az.resources.ResourceGroupArgs,
    "storage_account": az.storage.StorageAccountArgs,
    "host_account": az.storage.StorageAccountArgs,
    "lifecycle": az.storage.ManagementPolicyArgs,
    "system_topic": az.eventgrid.SystemTopicArgs,
    "subscription": az.eventgrid.SystemTopicEventSubscriptionArgs,
    "namespace": az.eventhub.NamespaceArgs,
    "notifications_hub": az.eventhub.EventHubArgs,
    "processed_hub": az.eventhub.EventHubArgs,
    "workspace": az.operationalinsights.WorkspaceArgs,
    "insights": az.applicationinsights.ComponentArgs,
    "plan": az.web.AppServicePlanArgs,
    "function": az.web.WebAppArgs,
    "lookup_table": az.storage.TableArgs,
    "claims_table": az.storage.TableArgs,
    "cluster": az.kusto.ClusterArgs,
    "database": az.kusto.ReadWriteDatabaseArgs,
    "data_connection": az.kusto.EventHubDataConnectionArgs,
}
RAW = "raw"  # the container objects land in
MAX_TIMEOUT_S = 600  # the Consumption plan's longest function timeout
_KUSTO_TYPES = {"string": "string", "int": "int", "bigint": "long", "double": "real",
                "float": "real", "boolean": "bool", "timestamp": "datetime",
                "date": "datetime"}
_CLUSTER_ID = re.compile(r"^/subscriptions/[^/]+/resourceGroups/([^/]+)/providers/"
                         r"Microsoft\.Kusto/clusters/([a-z][a-z0-9]{3,21})$", re.IGNORECASE)
_VAULT_SECRET = re.compile(r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/"
                           r"Microsoft\.KeyVault/vaults/([A-Za-z0-9-]{3,24})/secrets/"
                           r"([A-Za-z0-9-]{1,127})$", re.IGNORECASE)


def global_name(kind: str, stack: str, pipeline: str, max_len: int, *, dashes: bool = True) -> str:
    """A name Azure wants unique across all customers (storage accounts, function apps,
    Event Hubs namespaces, Data Explorer clusters): readable head, stable hash tail."""
    tag = hashlib.sha256(f"{stack}/{pipeline}/{kind}".encode()).hexdigest()[:8]
    sep = "-" if dashes else ""
    head = re.sub(r"[^a-z0-9]+", sep, f"hw{sep}{pipeline}{sep}{kind}".lower()).strip("-")
    return f"{head[:max_len - len(tag) - len(sep)].rstrip('-')}{sep}{tag}"


def table_name(pipeline: str, table: str) -> str:
    """A Table Storage name: letters and digits, starting with a letter, at most 63."""
    return re.sub(r"[^A-Za-z0-9]+", "", f"hw{pipeline}{table}")[:63]


def lookup_keys(spec: PipelineSpec) -> dict[str, str]:
    """Lookup table -> the record field whose value is the row's RowKey (``key`` setting)."""
    return {table: key or "key" for table, key in spec.lookup_keys().items()}


def kusto_type(column: str, typ: str, pipeline: str) -> str:
    t = typ.strip().lower()
    if t.startswith("decimal"):
        return "decimal"
    if t not in _KUSTO_TYPES:
        raise PlanError(f"pipeline {pipeline!r}: sink.columns.{column} has type {typ!r}, which "
                        f"Data Explorer cannot map; use one of {', '.join(sorted(_KUSTO_TYPES))} "
                        "or decimal(p,s).")
    return _KUSTO_TYPES[t]


def cluster_ref(spec: PipelineSpec) -> tuple[str, str] | None:
    """(resource group, cluster name) of ``sink.existing``, or None to create a cluster."""
    if not spec.sink.existing:
        return None
    m = _CLUSTER_ID.match(spec.sink.existing)
    if not m:
        raise PlanError(
            f"pipeline {spec.name!r}: sink.existing must be a Data Explorer cluster resource "
            "id (/subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Kusto/"
            f"clusters/<name>), not {spec.sink.existing!r}.")
    return m.group(1), m.group(2)


def secret_ref(pipeline: str, logical: str, ref: str) -> tuple[str, str]:
    """(vault name, secret name) of a ``secrets:`` entry, which must be a Key Vault
    secret's resource id so the role assignment can name exactly that secret."""
    m = _VAULT_SECRET.match(ref)
    if not m:
        raise PlanError(
            f"pipeline {pipeline!r}: secrets.{logical} must be a Key Vault secret resource id "
            "(/subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.KeyVault/vaults/"
            f"<vault>/secrets/<name>), not {ref!r}.")
    return m.group(1), m.group(2)


def locations(spec: PipelineSpec) -> tuple[Location, list[Location]]:
    """The pipeline's source and every blob location it writes to. The account is a
    stand-in (``<orders account>``); containers are real names inside it."""
    account = f"<{spec.name} account>"
    dl = f"{account}/{spec.deadletter.bucket or 'deadletter'}"
    outs = [
        Location("dead-letter", dl, f"{spec.deadletter.prefix}{spec.name}/", scheme="https"),
        Location("notification dead-letter", dl,
                 f"{spec.deadletter.prefix}notifications/{spec.name}/", scheme="https"),
        Location("Event Grid dead-letter", f"{account}/eventgrid-deadletter", "",
                 scheme="https"),
    ]
    src = spec.source
    return Location("source", f"{account}/{RAW}", src.prefix, src.suffix, scheme="https"), outs


class AzureRules:
    """Azure's part of the plan-time checks (:mod:`components.checks` runs the rest)."""

    cloud = "azure"
    fixed_schema = ("Data Explorer ingests the processed hub through a table and a JSON "
                    "ingestion mapping created from sink.columns")

    def locations(self, spec: PipelineSpec) -> tuple[Location, list[Location]]:
        return locations(spec)

    def check_pipeline(self, spec: PipelineSpec, stack: StackConfig | None = None) -> None:
        where = f"pipeline {spec.name!r}"
        validate_overrides(where, spec.overrides.get("azure", {}), CHILDREN)
        if spec.source.bucket:
            raise PlanError(
                f"{where}: source.bucket (an existing container) is not supported on Azure "
                "yet: the Event Grid system topic belongs to the storage account the pipeline "
                "creates. Remove source.bucket and upload to the pipeline's 'raw' container.")
        if spec.limits.timeout_s > MAX_TIMEOUT_S:
            raise PlanError(
                f"{where}: limits.timeout_s={spec.limits.timeout_s} is over the Consumption "
                f"plan's {MAX_TIMEOUT_S} s; lower it.")
        if spec.lookups:
            raise PlanError(
                f"{where}: lookups (existing tables) are not supported on Azure yet; the "
                "pipeline creates its Table Storage tables. Remove lookups.")
        cluster_ref(spec)
        for column, typ in spec.sink.columns.items():
            kusto_type(column, typ, spec.name)
        for logical, ref in spec.secrets.items():
            secret_ref(spec.name, logical, ref)


RULES = AzureRules()


def check_pipeline(spec: PipelineSpec) -> None:
    """Refuse, with what to change, a pipeline the Azure component cannot deploy."""
    check_stack(StackConfig.model_construct(cloud="azure", pipelines=[spec]))


def check_stack(stack: StackConfig) -> None:
    """Every pipeline's checks, then sources that overlap and rings of pipelines."""
    neutral_check_stack(stack, RULES)
