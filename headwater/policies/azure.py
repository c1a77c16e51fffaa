"""Azure's checks of the policy rules, and the role-assignment scope rule they and the
Azure component share (:func:`assignment_problems`; ``components/azure/policy.py``
checks every assignment it makes with it).

What Azure does by itself has no row here: Storage (every service) and Event Hubs
encrypt at rest always, with Microsoft-managed keys unless a customer-managed key is
configured. Rows:

- no public access: storage accounts say ``allowBlobPublicAccess: false`` and no
  container grants anonymous ``Blob`` or ``Container`` access;
- encryption at rest: no storage service with its encryption turned off, no
  customer-managed key named without its Key Vault key (storage accounts and Event Hubs
  namespaces), Data Explorer clusters with disk encryption on (off by default);
- TLS only: storage accounts HTTPS-only with TLS 1.2 or later, Event Hubs namespaces
  TLS 1.2 or later, Function Apps HTTPS-only, TLS 1.2 or later, FTP off or FTPS only;
- roles: no Owner, Contributor, User Access Administrator or RBAC Administrator, and
  every role assignment scoped to one resource (never a management group, subscription
  or resource group); no custom role with ``*`` actions;
- dead-letters: every Event Grid subscription has a dead-letter destination, in a
  container the stack creates (Event Grid drops what it cannot write there). An Event Hub
  trigger moves its checkpoint on even after the function's last retry, so the stream has
  no dead-letter of its own: the function parks what fails in its dead-letter container
  (``HEADWATER_DEADLETTER_CONTAINER``), which must exist and which its identity must be
  able to write;
- log retention: Log Analytics workspaces set ``retentionInDays``, a classic Application
  Insights component (no workspace) sets its own, and every Function App sends its logs
  to Application Insights (else they go to no store with a retention);
- no plain-text secrets in app settings: a setting named like a secret holds a Key Vault
  reference (``@Microsoft.KeyVault(...)``) or nothing, and no setting holds a storage key,
  a SAS or a Service Bus/Event Hubs key whatever its name. The Application Insights
  connection string is not a secret (Microsoft documents its instrumentation key as an
  identifier; headwater's components disable local auth, so ingestion needs Entra ID);
- function timeout: see :func:`timeouts`;
- recursion: see :func:`retrigger`.

Resources are matched the way Azure links them: a container to its account by
``accountName``, a system topic by its ``source`` (the account's id), a Function App to
its storage account by the account's blob endpoint in its app settings, role assignments
by principal id and scope.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from . import get, is_reference, is_reference_map, is_secret_name, of_type, prefixes_overlap, rule

__all__ = ["FUNCTION_TIMEOUT_SETTING", "LEASE_SETTING", "PRIVILEGED_ROLES",
           "assignment_problems", "timespan_seconds"]

AZ = "azure-native:"
ACCOUNT = AZ + "storage:StorageAccount"
CONTAINER = AZ + "storage:BlobContainer"
NAMESPACE = AZ + "eventhub:Namespace"
CLUSTER = AZ + "kusto:Cluster"
SITE = AZ + "web:WebApp"
SITE_SETTINGS = AZ + "web:WebAppApplicationSettings"
PLAN = AZ + "web:AppServicePlan"
ASSIGNMENT = AZ + "authorization:RoleAssignment"
ROLE_DEFINITION = AZ + "authorization:RoleDefinition"
WORKSPACE = AZ + "operationalinsights:Workspace"
INSIGHTS = AZ + "applicationinsights:Component"
SYSTEM_TOPIC = AZ + "eventgrid:SystemTopic"
SUBSCRIPTIONS = (AZ + "eventgrid:SystemTopicEventSubscription", AZ + "eventgrid:EventSubscription")

# Built-in roles that grant control of everything at their scope (the same ids in every
# tenant): never granted to a pipeline's identities.
PRIVILEGED_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
    "f58310d9-a9f6-439a-9e8d-f62e7b41a168": "Role Based Access Control Administrator",
}
BLOB_WRITERS = {"ba92f5b4-2d11-453d-a403-e96b0029c9fe",  # Storage Blob Data Contributor
                "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"}  # Storage Blob Data Owner
TLS_OK = {"TLS1_2", "TLS1_3", "1.2", "1.3"}
# App settings: the Functions host reads ``AzureFunctionsJobHost__<path>`` over host.json
FUNCTION_TIMEOUT_SETTING = "AzureFunctionsJobHost__functionTimeout"
LEASE_SETTING = "HEADWATER_LEASE_S"  # how long a claim on a blob version lasts
CLAIMS_SETTING = "HEADWATER_IDEMPOTENCY_TABLE"
DEADLETTER_SETTING = "HEADWATER_DEADLETTER_CONTAINER"
CONSUMPTION_MAX_S = 600  # the longest functionTimeout a Consumption (Dynamic) plan allows
CONSUMPTION_DEFAULT_S = 300
NOT_SECRETS = {"APPLICATIONINSIGHTS_CONNECTION_STRING": re.compile(
    r"^InstrumentationKey=[0-9a-fA-F-]{36}(;[A-Za-z]+=https://[^;]+)*;?$")}
_KEY_MATERIAL = re.compile(r"(?i)(AccountKey|SharedAccessKey|SharedAccessSignature)=|[?&]sig=")
_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


# -- the role assignment rule ------------------------------------------------------------


def _role_id(definition: Any) -> str:
    m = re.search(rf"({_GUID})/?$", str(definition or ""))
    return m.group(1).lower() if m else ""


def assignment_problems(role_definition_id: str, scope: str) -> list[str]:
    """Every breach of the role rule by an assignment of ``role_definition_id`` (a role
    definition's resource id or GUID) at ``scope``: no privileged role, and a scope that
    names one resource below a resource group."""
    problems = []
    privileged = PRIVILEGED_ROLES.get(_role_id(role_definition_id))
    if privileged:
        problems.append(f"grants {privileged}, which controls everything at its scope")
    parts = [p for p in str(scope).split("/") if p]
    if "*" in str(scope):
        problems.append(f"scope {scope!r} has '*'")
    elif len(parts) < 8 or parts[0].lower() != "subscriptions" \
            or parts[2].lower() != "resourcegroups" or parts[4].lower() != "providers":
        what = ("a management group" if "managementgroups" in str(scope).lower()
                else "a subscription" if len(parts) <= 2
                else "a resource group" if len(parts) <= 4 else "no single resource")
        problems.append(f"scope {scope!r} is {what}, not one resource")
    return problems


@rule("iam-no-wildcards").check
def roles(res: Any) -> Iterator[tuple[Any, str, str]]:
    if res.resource_type == ASSIGNMENT:
        for problem in assignment_problems(get(res.props, "roleDefinitionId", default=""),
                                           get(res.props, "scope", default="")):
            yield (res, problem,
                   "grant a data-plane role (e.g. Storage Blob Data Reader) scoped to the one "
                   "container, table or event hub it needs")
    elif res.resource_type == ROLE_DEFINITION:
        for i, perm in enumerate(get(res.props, "permissions", default=[])):
            for key in ("actions", "dataActions"):
                for action in get(perm, key, default=[]):
                    if "*" in str(action):
                        yield (res, f"permissions[{i}].{key} {action!r} has '*'",
                               "list the exact operations the role needs")


# -- storage: public access, encryption, TLS ------------------------------------------------


@rule("no-public-access").check
def public_storage(resources: Sequence[Any]) -> Iterator[tuple[Any, str, str]]:
    for a in of_type(resources, ACCOUNT):
        if get(a.props, "allowBlobPublicAccess") is not False:
            yield (a, "does not refuse anonymous blob access (allowBlobPublicAccess is not "
                   "false)", "set allow_blob_public_access=False")
    for c in of_type(resources, CONTAINER):
        access = get(c.props, "publicAccess", default="None")
        if access not in ("None", None):
            yield (c, f"grants anonymous read access (publicAccess {access!r})",
                   "set public_access='None' and grant readers a data-plane role")


def _cmk_without_key(encryption: Any) -> bool:
    return str(get(encryption, "keySource", default="")).lower() == "microsoft.keyvault" and \
        not (get(encryption, "keyVaultProperties") or get(encryption, "keyvaultproperties"))


@rule("encryption-at-rest").check
def encrypted(resources: Sequence[Any]) -> Iterator[tuple[Any, str, str]]:
    for a in of_type(resources, ACCOUNT):
        services = get(a.props, "encryption", "services", default={})
        for service in sorted(services):
            if get(services, service, "enabled") is False:
                yield (a, f"turns off encryption of the {service} service",
                       f"remove encryption.services.{service}.enabled=False")
        if _cmk_without_key(get(a.props, "encryption")):
            yield (a, "names a customer-managed key source without its key",
                   "set encryption.key_vault_properties, or key_source='Microsoft.Storage'")
    for n in of_type(resources, NAMESPACE):
        if _cmk_without_key(get(n.props, "encryption")):
            yield (n, "names a customer-managed key source without its key",
                   "set encryption.key_vault_properties, or leave encryption out "
                   "(Microsoft-managed keys)")
    for c in of_type(resources, CLUSTER):
        if get(c.props, "enableDiskEncryption") is not True:
            yield (c, "does not encrypt its disks (enableDiskEncryption is off)",
                   "set enable_disk_encryption=True")


@rule("tls-only").check
def tls_only(resources: Sequence[Any]) -> Iterator[tuple[Any, str, str]]:
    for a in of_type(resources, ACCOUNT):
        if get(a.props, "enableHttpsTrafficOnly") is False or \
                get(a.props, "supportsHttpsTrafficOnly") is False:
            yield (a, "accepts plain HTTP", "set enable_https_traffic_only=True")
        if get(a.props, "minimumTlsVersion") not in TLS_OK:
            yield (a, f"accepts TLS below 1.2 (minimumTlsVersion "
                   f"{get(a.props, 'minimumTlsVersion')!r})", "set minimum_tls_version='TLS1_2'")
    for n in of_type(resources, NAMESPACE):
        if get(n.props, "minimumTlsVersion") not in TLS_OK:
            yield (n, f"accepts TLS below 1.2 (minimumTlsVersion "
                   f"{get(n.props, 'minimumTlsVersion')!r})", "set minimum_tls_version='1.2'")
    for s in of_type(resources, SITE):
        if get(s.props, "httpsOnly") is not True:
            yield (s, "accepts plain HTTP (httpsOnly is not true)", "set https_only=True")
        if get(s.props, "siteConfig", "minTlsVersion") not in TLS_OK:
            yield (s, "does not require TLS 1.2 (siteConfig.minTlsVersion)",
                   "set site_config.min_tls_version='1.2'")
        if get(s.props, "siteConfig", "ftpsState") not in ("Disabled", "FtpsOnly"):
            yield (s, "allows plain FTP deployments (siteConfig.ftpsState)",
                   "set site_config.ftps_state='Disabled'")


# -- Function Apps -----------------------------------------------------------------------


def settings(site: Any, resources: Sequence[Any] = ()) -> dict[str, Any]:
    """A Function App's app settings: ``siteConfig.appSettings``, then any
    ``WebAppApplicationSettings`` resource of the same site (which replaces them in Azure)."""
    out = {str(get(s, "name")): get(s, "value")
           for s in get(site.props, "siteConfig", "appSettings", default=[])}
    for extra in of_type(resources, SITE_SETTINGS):
        if get(extra.props, "name") == get(site.props, "name"):
            out.update(get(extra.props, "properties", default={}))
    return out


def timespan_seconds(value: Any) -> float | None:
    """``[d.]hh:mm:ss`` (host.json's functionTimeout) in seconds; None for none or -1."""
    m = re.fullmatch(r"(?:(\d+)\.)?(\d+):(\d+):(\d+)", str(value or "").strip())
    if not m:
        return None
    d, h, mi, s = (int(x) if x else 0 for x in m.groups())
    return float(((d * 24 + h) * 60 + mi) * 60 + s)


def _consumes_event_hub(values: Mapping[str, Any]) -> bool:
    return any(k.endswith("__fullyQualifiedNamespace") and
               str(v).endswith(".servicebus.windows.net") for k, v in values.items()) \
        or "HEADWATER_NOTIFICATIONS_HUB" in values


def _account_of(resources: Sequence[Any], blob_url: Any) -> Any:
    """The storage account whose blob endpoint is ``blob_url``."""
    for a in of_type(resources, ACCOUNT):
        endpoint = get(a.props, "primaryEndpoints", "blob") or \
            f"https://{get(a.props, 'accountName') or get(a.props, 'name')}.blob.core.windows.net/"
        if str(blob_url or "").rstrip("/") == str(endpoint).rstrip("/"):
            return a
    return None


def _account_name(account: Any) -> str:
    return str(get(account.props, "accountName") or get(account.props, "name") or "")


def _container(resources: Sequence[Any], account: str, name: str) -> Any:
    for c in of_type(resources, CONTAINER):
        if get(c.props, "containerName") == name and \
                str(get(c.props, "accountName", default="")).split("/")[-1] == account:
            return c
    return None


def _can_write(resources: Sequence[Any], principal: Any, account: str, container: str) -> bool:
    own = f"/storageaccounts/{account}".lower()
    return any(get(r.props, "principalId") == principal
               and _role_id(get(r.props, "roleDefinitionId")) in BLOB_WRITERS
               and str(get(r.props, "scope", default="")).lower().rstrip("/").endswith(
                   (own, f"{own}/blobservices/default/containers/{container}".lower()))
               for r in of_type(resources, ASSIGNMENT))


@rule("dead-letter").check
def dead_letters(resources: Sequence[Any]) -> Iterator[tuple[Any, str, str]]:
    for s in of_type(resources, *SUBSCRIPTIONS):
        dest = get(s.props, "deadLetterWithResourceIdentity", "deadLetterDestination") or \
            get(s.props, "deadLetterDestination")
        if not dest:
            yield (s, "has no dead-letter destination, so an event Event Grid cannot deliver "
                   "after its retries is dropped",
                   "set dead_letter_with_resource_identity (or dead_letter_destination) to a "
                   "StorageBlob container")
            continue
        account = str(get(dest, "resourceId", default="")).rstrip("/").split("/")[-1]
        name = get(dest, "blobContainerName")
        if get(dest, "endpointType") == "StorageBlob" and \
                _container(resources, account, str(name)) is None:
            yield (s, f"dead-letters to container {name!r} of account {account!r}, which the "
                   "stack does not create, so dead-lettered events are lost",
                   "create that blob container in the stack")
    for site in of_type(resources, SITE):
        values = settings(site, resources)
        if not _consumes_event_hub(values):
            continue
        fix = ("set HEADWATER_DEADLETTER_CONTAINER to a container the stack creates on the "
               "account of HEADWATER_BLOB_ACCOUNT_URL, and grant the app's identity Storage "
               "Blob Data Contributor on it")
        name = values.get(DEADLETTER_SETTING)
        account = _account_of(resources, values.get("HEADWATER_BLOB_ACCOUNT_URL"))
        if not name or account is None:
            yield (site, "consumes an Event Hub, whose trigger moves its checkpoint on even "
                   "after the last retry, with no dead-letter container to park what fails",
                   fix)
            continue
        acct = _account_name(account)
        if _container(resources, acct, str(name)) is None:
            yield (site, f"parks failed notifications in container {name!r} of account "
                   f"{acct!r}, which the stack does not create", fix)
        elif not _can_write(resources, get(site.props, "identity", "principalId"), acct,
                            str(name)):
            yield (site, f"parks failed notifications in container {name!r}, which its "
                   "identity may not write", fix)


@rule("log-retention").check
def log_retention(resources: Sequence[Any]) -> Iterator[tuple[Any, str, str]]:
    for w in of_type(resources, WORKSPACE):
        if not get(w.props, "retentionInDays"):
            yield (w, "does not set how long it keeps logs",
                   "set retention_in_days (e.g. 30)")
    for c in of_type(resources, INSIGHTS):
        if not get(c.props, "workspaceResourceId") and not get(c.props, "retentionInDays"):
            yield (c, "is a classic component without a workspace or a retention",
                   "set workspace_resource_id to a workspace with retention_in_days")
    for site in of_type(resources, SITE):
        if not settings(site, resources).get("APPLICATIONINSIGHTS_CONNECTION_STRING"):
            yield (site, "sends its logs to no Application Insights, so no store with a "
                   "retention keeps them",
                   "set the app setting APPLICATIONINSIGHTS_CONNECTION_STRING of a "
                   "workspace-based component")


def _secret_findings(res: Any, values: Mapping[str, Any]) -> Iterator[tuple[Any, str, str]]:
    fix = ("keep the value in Key Vault and set the setting to a Key Vault reference "
           "(@Microsoft.KeyVault(SecretUri=...)), or use an identity-based connection "
           "(<connection>__accountName / __fullyQualifiedNamespace)")
    for name in values:
        value = values[name]
        allowed = NOT_SECRETS.get(name)
        if allowed is not None and allowed.match(str(value or "")):
            continue
        if is_reference(value) or is_reference_map(name, value):
            continue
        if isinstance(value, str) and _KEY_MATERIAL.search(value):
            yield (res, f"app setting {name} holds a key or a SAS", fix)
        elif is_secret_name(name):
            yield (res, f"app setting {name} holds a literal value", fix)


@rule("no-plain-secrets").check
def plain_secrets(res: Any) -> Iterator[tuple[Any, str, str]]:
    if res.resource_type == SITE:
        yield from _secret_findings(res, settings(res))
    elif res.resource_type == SITE_SETTINGS:
        yield from _secret_findings(res, get(res.props, "properties", default={}))


@rule("timeout-below-visibility").check
def timeouts(resources: Sequence[Any]) -> Iterator[tuple[Any, str, str]]:
    """Azure's version of "the function's timeout is below the queue's visibility timeout".

    An Event Hub trigger has no visibility timeout: a batch is delivered again only when
    the function fails (its retry policy) or when the partition moves to another instance.
    What keeps a redelivery off an object a live invocation is still working on is the
    claim's lease on that blob version (``HEADWATER_LEASE_S``, in the idempotency table):
    until it ends, a redelivery is told the object is busy; after it, the redelivery takes
    the object over. So the lease must outlast the function's timeout
    (``AzureFunctionsJobHost__functionTimeout``, which overrides host.json), set
    explicitly so the plan sees the one in force; and on a Consumption plan the timeout
    is at most 10 minutes, or the host does not start.
    """
    plans = {str(get(p.props, "name")): p for p in of_type(resources, PLAN)}
    for site in of_type(resources, SITE):
        values = settings(site, resources)
        if not _consumes_event_hub(values):
            continue
        plan = plans.get(str(get(site.props, "serverFarmId", default="")).rstrip("/")
                         .split("/")[-1])
        dynamic = plan is not None and get(plan.props, "sku", "tier") == "Dynamic"
        raw = values.get(FUNCTION_TIMEOUT_SETTING)
        timeout = timespan_seconds(raw)
        if raw is not None and timeout is None:
            yield (site, f"{FUNCTION_TIMEOUT_SETTING} {raw!r} is not a timespan hh:mm:ss",
                   "set it as hh:mm:ss (e.g. 00:01:00)")
            continue
        if dynamic and timeout is not None and timeout > CONSUMPTION_MAX_S:
            yield (site, f"function timeout {timeout:g}s is over the Consumption plan's "
                   f"{CONSUMPTION_MAX_S}s, so the host does not start",
                   f"set {FUNCTION_TIMEOUT_SETTING} to 00:10:00 or less")
        if CLAIMS_SETTING not in values:
            continue
        if timeout is None:
            yield (site, "claims blob versions but leaves the function timeout to host.json "
                   "or the plan's default, so its lease cannot be checked against it",
                   f"set the app setting {FUNCTION_TIMEOUT_SETTING} (hh:mm:ss)")
            continue
        try:
            lease = float(values.get(LEASE_SETTING) or 0)
        except (TypeError, ValueError):
            lease = 0.0
        if lease <= timeout:
            yield (site, f"claims last {lease:g}s ({LEASE_SETTING}), not longer than the "
                   f"function timeout {timeout:g}s, so a redelivery can take over a blob a "
                   "live invocation is still sending",
                   f"set {LEASE_SETTING} above the timeout (headwater uses the timeout + 30s)")


# -- recursion -------------------------------------------------------------------------


def _blob_subject(container: str, prefix: str = "") -> str:
    return f"/blobServices/default/containers/{container}/blobs/{prefix}"


def _topic_account(resources: Sequence[Any], sub: Any) -> str:
    """The storage account whose events the subscription receives ("" if not a storage
    system topic of the stack)."""
    source = ""
    topic_name = get(sub.props, "systemTopicName")
    for t in of_type(resources, SYSTEM_TOPIC):
        if topic_name in (get(t.props, "name"), get(t.props, "systemTopicName")):
            source = str(get(t.props, "source", default=""))
    if not source and sub.resource_type == SUBSCRIPTIONS[1]:
        source = str(get(sub.props, "scope", default=""))
    if "/microsoft.storage/storageaccounts/" not in source.lower():
        return ""
    return source.rstrip("/").split("/")[-1]


@rule("no-retrigger").check
def retrigger(resources: Sequence[Any]) -> Iterator[tuple[Any, str, str]]:
    """An Event Grid subscription on a storage account triggers on every blob created
    under its subject filter. A writer into that account must write outside it: the
    subscription's own dead-letter container and every Function App's dead-letter
    container and prefix (``HEADWATER_DEADLETTER_CONTAINER`` / ``_PREFIX``)."""
    fix = ("write dead-letters to another container (or account), or narrow the "
           "subscription's subject_begins_with to the source container and prefix")
    for sub in of_type(resources, *SUBSCRIPTIONS):
        account = _topic_account(resources, sub)
        if not account:
            continue
        types = get(sub.props, "filter", "includedEventTypes", default=[])
        if types and "Microsoft.Storage.BlobCreated" not in types:
            continue
        source = str(get(sub.props, "filter", "subjectBeginsWith", default=""))
        shown = source or "(every blob of the account)"
        dest = get(sub.props, "deadLetterWithResourceIdentity", "deadLetterDestination") or \
            get(sub.props, "deadLetterDestination") or {}
        if str(get(dest, "resourceId", default="")).rstrip("/").split("/")[-1] == account:
            written = _blob_subject(str(get(dest, "blobContainerName", default="")))
            if prefixes_overlap(written, source):
                yield (sub, f"dead-letters into {written} of account {account!r}, under its "
                       f"own subject filter {shown}, so every dead-lettered event "
                       "triggers it again", fix)
        for site in of_type(resources, SITE):
            values = settings(site, resources)
            acct = _account_of(resources, values.get("HEADWATER_BLOB_ACCOUNT_URL"))
            if acct is None or _account_name(acct) != account or \
                    not values.get(DEADLETTER_SETTING):
                continue
            written = _blob_subject(str(values[DEADLETTER_SETTING]),
                                    str(values.get("HEADWATER_DEADLETTER_PREFIX") or ""))
            if prefixes_overlap(written, source):
                yield (site, f"writes dead-letters to {written} of account {account!r}, under "
                       f"the subject filter {shown} of subscription {sub.name!r}, so every "
                       "dead-letter triggers the pipeline again", fix)
