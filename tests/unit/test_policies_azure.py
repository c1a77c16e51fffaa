"""Azure rows of the policy rules (headwater/policies/azure.py): for every rule a stack
that breaks it and one that passes, asserting the message. The secure stack is the
shape the Azure component deploys (account, containers, system topic and subscription,
namespace, Function App with identity-based settings, role assignments on single
resources, workspace-based Application Insights)."""

from __future__ import annotations

import json

import pytest

from headwater.policies import evaluate
from headwater.policies.azure import assignment_problems, timespan_seconds
from headwater.program import Res

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

AZ = "azure-native:"
SUB = "/subscriptions/00000000-0000-4000-8000-000000000001"
GROUP = f"{SUB}/resourceGroups/orders-rg"
ACCOUNT_ID = f"{GROUP}/providers/Microsoft.Storage/storageAccounts/hwordersdata1a2b3c4d"
CONTAINERS = f"{ACCOUNT_ID}/blobServices/default/containers"
ROLE = f"{SUB}/providers/Microsoft.Authorization/roleDefinitions/"
BLOB_CONTRIBUTOR = ROLE + "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
OWNER = ROLE + "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
CONTRIBUTOR = ROLE + "b24988ac-6180-42a0-ab88-20f7382dd24c"
PRINCIPAL = "5a637dfa-738d-59b8-aebb-670273f3ea9e"
INSIGHTS_CS = ("InstrumentationKey=b3e259ed-191a-5699-86dc-05b0e833c6bd;IngestionEndpoint="
               "https://westeurope-5.in.applicationinsights.azure.com/")


def res(typ: str, logical: str, **props) -> Res:
    return Res(AZ + typ, logical, dict(props), outputs=dict(props),
               urn=f"urn:pulumi:t::p::{AZ}{typ}::{logical}")


def found(resources: list[Res], rule: str) -> list[str]:
    return [f"{v.name}: {v.message} | {v.fix}" for v in evaluate(resources) if v.rule == rule]


def app_settings(**extra) -> dict:
    values = {
        "AzureWebJobsStorage__accountName": "hwordershost1a2b3c4d",
        "APPLICATIONINSIGHTS_CONNECTION_STRING": INSIGHTS_CS,
        "EVENTHUB__fullyQualifiedNamespace": "hw-orders-ns-1a2b3c4d.servicebus.windows.net",
        "HEADWATER_NOTIFICATIONS_HUB": "notifications",
        "HEADWATER_BLOB_ACCOUNT_URL": "https://hwordersdata1a2b3c4d.blob.core.windows.net/",
        "HEADWATER_DEADLETTER_CONTAINER": "deadletter",
        "HEADWATER_DEADLETTER_PREFIX": "deadletter/",
        "HEADWATER_LOOKUP_KEYS": json.dumps({"users": "user_id"}),
        "HEADWATER_IDEMPOTENCY_TABLE": "hwordersprocessed",
        "AzureFunctionsJobHost__functionTimeout": "00:01:00",
        "HEADWATER_LEASE_S": "90",
        "HEADWATER_SECRET_EMAIL_KEY": "@Microsoft.KeyVault(SecretUri=https://hw-secrets.vault."
                                      "azure.net/secrets/email-key/)",
    }
    values.update(extra)
    return values


def site(settings: dict | None = None, **props) -> Res:
    config = {"minTlsVersion": "1.2", "ftpsState": "Disabled",
              "appSettings": [{"name": k, "value": v}
                              for k, v in (settings or app_settings()).items() if v is not None]}
    base = {"name": "hw-orders-fn-1a2b3c4d", "httpsOnly": True, "siteConfig": config,
            "serverFarmId": f"{GROUP}/providers/Microsoft.Web/serverfarms/orders-plan1a2b3c4d",
            "identity": {"type": "SystemAssigned", "principalId": PRINCIPAL}}
    base.update(props)
    return res("web:WebApp", "orders-function", **base)


def subscription(subject: str = "/blobServices/default/containers/raw/blobs/raw/orders/",
                 dead_letter: str | None = "eventgrid-deadletter") -> Res:
    props: dict = {"systemTopicName": "orders-topic1a2b3c4d",
                   "filter": {"includedEventTypes": ["Microsoft.Storage.BlobCreated"],
                              "subjectBeginsWith": subject}}
    if dead_letter:
        props["deadLetterWithResourceIdentity"] = {
            "identity": {"type": "SystemAssigned"},
            "deadLetterDestination": {"endpointType": "StorageBlob", "resourceId": ACCOUNT_ID,
                                      "blobContainerName": dead_letter}}
    return res("eventgrid:SystemTopicEventSubscription", "orders-blob-created", **props)


def container(name: str, **props) -> Res:
    return res("storage:BlobContainer", f"orders-{name}", **{
        "containerName": name, "accountName": "hwordersdata1a2b3c4d", "publicAccess": "None",
        **props})


def secure_stack(**site_props) -> list[Res]:
    return [
        res("storage:StorageAccount", "orders-storage", accountName="hwordersdata1a2b3c4d",
            allowBlobPublicAccess=False, minimumTlsVersion="TLS1_2",
            enableHttpsTrafficOnly=True,
            encryption={"keySource": "Microsoft.Storage",
                        "services": {"blob": {"enabled": True}, "table": {"enabled": True}}},
            primaryEndpoints={"blob": "https://hwordersdata1a2b3c4d.blob.core.windows.net/"}),
        container("raw"), container("deadletter"), container("eventgrid-deadletter"),
        res("eventgrid:SystemTopic", "orders-topic", name="orders-topic1a2b3c4d",
            source=ACCOUNT_ID, topicType="Microsoft.Storage.StorageAccounts"),
        subscription(),
        res("eventhub:Namespace", "orders-events", namespaceName="hw-orders-ns-1a2b3c4d",
            minimumTlsVersion="1.2", disableLocalAuth=True),
        res("kusto:Cluster", "orders-cluster", clusterName="hwordersadx1a2b3c4d",
            enableDiskEncryption=True),
        res("web:AppServicePlan", "orders-plan", name="orders-plan1a2b3c4d",
            sku={"name": "Y1", "tier": "Dynamic"}),
        site(**site_props),
        res("authorization:RoleAssignment", "orders-function-writes-deadletters",
            principalId=PRINCIPAL, roleDefinitionId=BLOB_CONTRIBUTOR,
            scope=f"{CONTAINERS}/deadletter"),
        res("operationalinsights:Workspace", "orders-logs", retentionInDays=30),
        res("applicationinsights:Component", "orders-insights",
            workspaceResourceId=f"{GROUP}/providers/Microsoft.OperationalInsights/workspaces/x"),
    ]


def replace(stack: list[Res], new: Res) -> list[Res]:
    return [new if r.name == new.name else r for r in stack]


def without(stack: list[Res], name: str) -> list[Res]:
    return [r for r in stack if r.name != name]


def test_the_secure_azure_stack_passes_every_rule():
    assert evaluate(secure_stack()) == []


# -- no-public-access ------------------------------------------------------------------


def test_an_account_allowing_public_blobs_and_an_anonymous_container_are_refused():
    stack = secure_stack()
    stack[0].outputs.pop("allowBlobPublicAccess")
    stack = replace(stack, container("raw", publicAccess="Container"))
    msgs = found(stack, "no-public-access")
    assert msgs == ["orders-storage: does not refuse anonymous blob access "
                    "(allowBlobPublicAccess is not false) | set allow_blob_public_access=False",
                    "orders-raw: grants anonymous read access (publicAccess 'Container') | set "
                    "public_access='None' and grant readers a data-plane role"]
    assert found(secure_stack(), "no-public-access") == []


# -- encryption-at-rest ----------------------------------------------------------------


def test_turned_off_storage_encryption_a_keyless_cmk_and_unencrypted_cluster_disks_are_refused():
    stack = secure_stack()
    stack[0].outputs["encryption"] = {"keySource": "Microsoft.Keyvault",
                                      "services": {"blob": {"enabled": False}}}
    stack = replace(stack, res("eventhub:Namespace", "orders-events", minimumTlsVersion="1.2",
                               encryption={"keySource": "Microsoft.KeyVault"}))
    stack = replace(stack, res("kusto:Cluster", "orders-cluster", enableDiskEncryption=False))
    msgs = found(stack, "encryption-at-rest")
    assert "orders-storage: turns off encryption of the blob service | remove " \
           "encryption.services.blob.enabled=False" in msgs
    assert "orders-storage: names a customer-managed key source without its key | set " \
           "encryption.key_vault_properties, or key_source='Microsoft.Storage'" in msgs
    assert any(m.startswith("orders-events: names a customer-managed key source without its "
                            "key") for m in msgs)
    assert "orders-cluster: does not encrypt its disks (enableDiskEncryption is off) | set " \
           "enable_disk_encryption=True" in msgs
    assert found(secure_stack(), "encryption-at-rest") == []


# -- tls-only --------------------------------------------------------------------------


def test_plain_http_and_old_tls_on_storage_event_hubs_and_function_apps_are_refused():
    stack = secure_stack(httpsOnly=False)
    stack[0].outputs.update(enableHttpsTrafficOnly=False, minimumTlsVersion="TLS1_0")
    stack = replace(stack, res("eventhub:Namespace", "orders-events", minimumTlsVersion="1.0"))
    stack[-4].outputs["siteConfig"]["ftpsState"] = "AllAllowed"
    msgs = found(stack, "tls-only")
    assert "orders-storage: accepts plain HTTP | set enable_https_traffic_only=True" in msgs
    assert "orders-storage: accepts TLS below 1.2 (minimumTlsVersion 'TLS1_0') | set " \
           "minimum_tls_version='TLS1_2'" in msgs
    assert "orders-events: accepts TLS below 1.2 (minimumTlsVersion '1.0') | set " \
           "minimum_tls_version='1.2'" in msgs
    assert "orders-function: accepts plain HTTP (httpsOnly is not true) | set " \
           "https_only=True" in msgs
    assert "orders-function: allows plain FTP deployments (siteConfig.ftpsState) | set " \
           "site_config.ftps_state='Disabled'" in msgs
    assert found(secure_stack(), "tls-only") == []


# -- iam-no-wildcards --------------------------------------------------------------------


def test_owner_contributor_and_group_or_subscription_scopes_are_refused():
    stack = secure_stack() + [
        res("authorization:RoleAssignment", "orders-owner", principalId=PRINCIPAL,
            roleDefinitionId=OWNER, scope=SUB),
        res("authorization:RoleAssignment", "orders-contributor", principalId=PRINCIPAL,
            roleDefinitionId=CONTRIBUTOR, scope=f"{CONTAINERS}/raw"),
        res("authorization:RoleAssignment", "orders-group-reader", principalId=PRINCIPAL,
            roleDefinitionId=BLOB_CONTRIBUTOR, scope=GROUP),
        res("authorization:RoleDefinition", "orders-custom",
            permissions=[{"actions": ["Microsoft.Storage/*"]}]),
    ]
    msgs = found(stack, "iam-no-wildcards")
    fix = ("grant a data-plane role (e.g. Storage Blob Data Reader) scoped to the one "
           "container, table or event hub it needs")
    assert f"orders-owner: grants Owner, which controls everything at its scope | {fix}" in msgs
    assert f"orders-owner: scope '{SUB}' is a subscription, not one resource | {fix}" in msgs
    assert f"orders-contributor: grants Contributor, which controls everything at its " \
           f"scope | {fix}" in msgs
    assert f"orders-group-reader: scope '{GROUP}' is a resource group, not one resource | " \
           f"{fix}" in msgs
    assert "orders-custom: permissions[0].actions 'Microsoft.Storage/*' has '*' | list the " \
           "exact operations the role needs" in msgs
    assert len(msgs) == 5
    assert found(secure_stack(), "iam-no-wildcards") == []


def test_the_component_and_the_rule_agree_on_single_resource_scopes():
    assert assignment_problems(BLOB_CONTRIBUTOR, f"{CONTAINERS}/raw") == []
    secret = (f"{GROUP}/providers/Microsoft.KeyVault/vaults/hw-secrets/secrets/email-key")
    assert assignment_problems(BLOB_CONTRIBUTOR, secret) == []
    (problem,) = assignment_problems(
        BLOB_CONTRIBUTOR, "/providers/Microsoft.Management/managementGroups/root")
    assert "is a management group, not one resource" in problem


# -- dead-letter -------------------------------------------------------------------------


def test_an_event_grid_subscription_needs_a_dead_letter_container_the_stack_creates():
    stack = replace(secure_stack(), subscription(dead_letter=None))
    (msg,) = found(stack, "dead-letter")
    assert msg == ("orders-blob-created: has no dead-letter destination, so an event Event "
                   "Grid cannot deliver after its retries is dropped | set "
                   "dead_letter_with_resource_identity (or dead_letter_destination) to a "
                   "StorageBlob container")
    missing = replace(secure_stack(), subscription(dead_letter="nowhere"))
    (msg,) = found(missing, "dead-letter")
    assert msg.startswith("orders-blob-created: dead-letters to container 'nowhere' of account "
                          "'hwordersdata1a2b3c4d', which the stack does not create, so "
                          "dead-lettered events are lost")
    assert found(secure_stack(), "dead-letter") == []


def test_an_event_hub_triggered_app_must_be_able_to_park_what_fails():
    no_container = secure_stack()
    no_container = replace(no_container, site(app_settings(HEADWATER_DEADLETTER_CONTAINER=None)))
    (msg,) = found(no_container, "dead-letter")
    assert msg.startswith("orders-function: consumes an Event Hub, whose trigger moves its "
                          "checkpoint on even after the last retry, with no dead-letter "
                          "container to park what fails | set HEADWATER_DEADLETTER_CONTAINER")
    not_created = without(secure_stack(), "orders-deadletter")
    (msg,) = found(not_created, "dead-letter")
    assert msg.startswith("orders-function: parks failed notifications in container "
                          "'deadletter' of account 'hwordersdata1a2b3c4d', which the stack "
                          "does not create")
    not_writable = without(secure_stack(), "orders-function-writes-deadletters")
    (msg,) = found(not_writable, "dead-letter")
    assert msg.startswith("orders-function: parks failed notifications in container "
                          "'deadletter', which its identity may not write")


# -- log-retention -----------------------------------------------------------------------


def test_workspaces_without_retention_classic_insights_and_apps_without_insights_are_refused():
    stack = replace(secure_stack(), res("operationalinsights:Workspace", "orders-logs"))
    stack = replace(stack, res("applicationinsights:Component", "orders-insights"))
    stack = replace(stack, site(app_settings(APPLICATIONINSIGHTS_CONNECTION_STRING=None)))
    msgs = found(stack, "log-retention")
    assert msgs == [
        "orders-logs: does not set how long it keeps logs | set retention_in_days (e.g. 30)",
        "orders-insights: is a classic component without a workspace or a retention | set "
        "workspace_resource_id to a workspace with retention_in_days",
        "orders-function: sends its logs to no Application Insights, so no store with a "
        "retention keeps them | set the app setting APPLICATIONINSIGHTS_CONNECTION_STRING of "
        "a workspace-based component"]
    assert found(secure_stack(), "log-retention") == []


# -- no-plain-secrets --------------------------------------------------------------------


def test_literal_secrets_and_keys_in_app_settings_are_refused_references_allowed():
    bad = site(app_settings(
        PAYMENTS_API_TOKEN="tok_live_1",
        AzureWebJobsStorage="DefaultEndpointsProtocol=https;AccountName=a;AccountKey=abc==",
        EVENTHUB_CONNECTION_STRING="Endpoint=sb://ns.servicebus.windows.net/;"
                                   "SharedAccessKeyName=send;SharedAccessKey=xyz=",
        APPLICATIONINSIGHTS_CONNECTION_STRING=INSIGHTS_CS + ";AccountKey=nope"))
    msgs = found([bad], "no-plain-secrets")
    fix = ("keep the value in Key Vault and set the setting to a Key Vault reference "
           "(@Microsoft.KeyVault(SecretUri=...)), or use an identity-based connection "
           "(<connection>__accountName / __fullyQualifiedNamespace)")
    assert f"orders-function: app setting PAYMENTS_API_TOKEN holds a literal value | {fix}" in msgs
    assert f"orders-function: app setting AzureWebJobsStorage holds a key or a SAS | {fix}" in msgs
    assert any(m.startswith("orders-function: app setting EVENTHUB_CONNECTION_STRING holds a "
                            "key or a SAS") for m in msgs)
    assert any(m.startswith("orders-function: app setting APPLICATIONINSIGHTS_CONNECTION_STRING "
                            "holds a key or a SAS") for m in msgs)
    assert len(msgs) == 4
    settings_res = res("web:WebAppApplicationSettings", "orders-settings",
                       name="hw-orders-fn-1a2b3c4d", properties={"DB_PASSWORD": "hunter2"})
    (msg,) = found([settings_res], "no-plain-secrets")
    assert msg.startswith("orders-settings: app setting DB_PASSWORD holds a literal value")
    # the component's settings: Key Vault references, identity-based connections, the
    # Application Insights connection string, the lookup key map
    assert found([site()], "no-plain-secrets") == []


# -- timeout-below-visibility ------------------------------------------------------------


def test_the_claims_lease_must_outlast_the_function_timeout_set_in_app_settings():
    short = replace(secure_stack(), site(app_settings(HEADWATER_LEASE_S="60")))
    (msg,) = found(short, "timeout-below-visibility")
    assert msg == ("orders-function: claims last 60s (HEADWATER_LEASE_S), not longer than the "
                   "function timeout 60s, so a redelivery can take over a blob a live "
                   "invocation is still sending | set HEADWATER_LEASE_S above the timeout "
                   "(headwater uses the timeout + 30s)")
    unset = replace(secure_stack(), site(app_settings(
        AzureFunctionsJobHost__functionTimeout=None)))
    (msg,) = found(unset, "timeout-below-visibility")
    assert msg.startswith("orders-function: claims blob versions but leaves the function "
                          "timeout to host.json or the plan's default")
    too_long = replace(secure_stack(), site(app_settings(
        AzureFunctionsJobHost__functionTimeout="00:20:00", HEADWATER_LEASE_S="1230")))
    (msg,) = found(too_long, "timeout-below-visibility")
    assert msg.startswith("orders-function: function timeout 1200s is over the Consumption "
                          "plan's 600s, so the host does not start")
    assert found(secure_stack(), "timeout-below-visibility") == []
    assert timespan_seconds("1.00:00:30") == 86430 and timespan_seconds("-1") is None


# -- no-retrigger ------------------------------------------------------------------------


def test_dead_letters_under_the_subscriptions_subject_filter_are_refused():
    whole_account = replace(secure_stack(), subscription(subject=""))
    msgs = found(whole_account, "no-retrigger")
    fix = ("write dead-letters to another container (or account), or narrow the "
           "subscription's subject_begins_with to the source container and prefix")
    assert ("orders-blob-created: dead-letters into /blobServices/default/containers/"
            "eventgrid-deadletter/blobs/ of account 'hwordersdata1a2b3c4d', under its own "
            "subject filter (every blob of the account), so every dead-lettered event "
            f"triggers it again | {fix}") in msgs
    assert ("orders-function: writes dead-letters to /blobServices/default/containers/"
            "deadletter/blobs/deadletter/ of account 'hwordersdata1a2b3c4d', under the subject "
            "filter (every blob of the account) of subscription 'orders-blob-created', so "
            f"every dead-letter triggers the pipeline again | {fix}") in msgs
    same_container = replace(secure_stack(), site(app_settings(
        HEADWATER_DEADLETTER_CONTAINER="raw", HEADWATER_DEADLETTER_PREFIX="raw/")))
    (msg,) = found(same_container, "no-retrigger")
    assert msg.startswith("orders-function: writes dead-letters to /blobServices/default/"
                          "containers/raw/blobs/raw/ of account 'hwordersdata1a2b3c4d', under "
                          "the subject filter /blobServices/default/containers/raw/blobs/raw/"
                          "orders/")
    beside = replace(secure_stack(), site(app_settings(
        HEADWATER_DEADLETTER_CONTAINER="raw", HEADWATER_DEADLETTER_PREFIX="failed/")))
    assert found(beside, "no-retrigger") == []
    assert found(secure_stack(), "no-retrigger") == []
