"""The Azure program under Pulumi mocks: the real ``__main__.py`` with the shipped
two-pipeline example stack (Pulumi.azure.yaml), pulumi_azure_native's real SDK types, and
mocks answering like ARM (:class:`components.azure.mocks.AzureMocks`). Resource graph,
wiring, identity-based settings, role assignment scopes, plan-time refusals."""

from __future__ import annotations

import copy
import importlib
import json
import os
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import pulumi
import pulumi_azure_native as az
import pytest
import yaml

from components.azure.mocks import SUBSCRIPTION, AzureMocks
from components.azure.policy import ROLES, scope_problems
from headwater.testing import program as harness
from headwater.testing.inputs import input_problems
from headwater.testing.program import Graph

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = "headwater:azure:Pipeline"
RA = "azure-native:authorization:RoleAssignment"
SUB = "azure-native:eventgrid:SystemTopicEventSubscription"

PER_PIPELINE = {
    "azure-native:resources:ResourceGroup": 1,
    "azure-native:storage:StorageAccount": 2,  # data + Functions host
    "azure-native:storage:BlobContainer": 4,  # raw, deadletter, eventgrid-deadletter, packages
    "azure-native:storage:ManagementPolicy": 1,
    "azure-native:storage:Blob": 1,  # the function package
    "azure-native:eventgrid:SystemTopic": 1,
    SUB: 1,
    "azure-native:eventhub:Namespace": 1,
    "azure-native:eventhub:EventHub": 2,
    "azure-native:eventhub:ConsumerGroup": 2,
    "azure-native:operationalinsights:Workspace": 1,
    "azure-native:applicationinsights:Component": 1,
    "azure-native:web:AppServicePlan": 1,
    "azure-native:web:WebApp": 1,
    "azure-native:kusto:Cluster": 1,
    "azure-native:kusto:ReadWriteDatabase": 1,
    "azure-native:kusto:Script": 1,
    "azure-native:kusto:EventHubDataConnection": 1,
}


def example_config() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "Pulumi.azure.yaml").read_text(encoding="utf-8"))["config"])


def fake_artifact(folder: Path) -> Path:
    path = folder / "function.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("function_app.py", "from runtimes.azure.function_app import app\n")
    return path


def run_program(config: dict[str, Any], tmp_path: Path) -> Graph:
    return harness.run_program(config, AzureMocks(), artifact=fake_artifact(tmp_path),
                               stack="azure")


@pytest.fixture(scope="module")
def graph(tmp_path_factory) -> Graph:
    return run_program(example_config(), tmp_path_factory.mktemp("azure"))


def _settings(graph: Graph, pipeline: str) -> dict[str, str]:
    app = graph.one("azure-native:web:WebApp", f"{pipeline}-function")
    return {s["name"]: s["value"] for s in app.inputs["siteConfig"]["appSettings"]}


def _grants(graph: Graph, prefix: str) -> dict[str, Any]:
    return {r.name.removeprefix(prefix): r.inputs for r in graph.of(RA)
            if r.name.startswith(prefix)}


def _role(inputs: dict[str, Any]) -> str:
    guid = inputs["roleDefinitionId"].rsplit("/", 1)[1]
    return next(name for name, g in ROLES.items() if g == guid)


def test_graph_has_each_pipelines_children_under_its_component(graph):
    assert sorted(r.name for r in graph.of(PIPELINE)) == ["orders", "signups"]
    tables = {"orders": 2, "signups": 1}  # claims; orders enriches from 'users' too
    for name in ("orders", "signups"):
        kinds = Counter(r.typ for r in graph.children(name) if r.typ != RA)
        expected = dict(PER_PIPELINE)
        expected["azure-native:storage:Table"] = tables[name]
        assert kinds == expected, name
    # every Azure resource belongs to a pipeline or to the stack's observability component
    assert all(r.parent.split("::")[-2].endswith((PIPELINE, "headwater:azure:Observability"))
               for r in graph.resources if r.typ.startswith("azure-native:"))
    assert set(graph.outputs) >= {"storage_accounts", "eventhub_namespaces", "function_apps",
                                  "databases", "kql_queries", "processed_hubs"}
    assert graph.outputs["kql_queries"]["orders"].startswith("database('orders').['orders']")


def test_every_input_is_one_the_sdk_types_define_at_every_depth(graph):
    checked = 0
    for r in graph.resources:
        if not r.typ.startswith("azure-native:"):
            continue
        _, module, cls = r.typ.split(":")
        args = getattr(importlib.import_module(f"pulumi_azure_native.{module}"), cls + "Args")
        assert input_problems(r.inputs, args) == [], r.name
        checked += 1
    assert checked == len([r for r in graph.resources if r.typ.startswith("azure-native:")]) > 60


def test_input_check_catches_a_misspelt_nested_key(graph):
    sub = copy.deepcopy(graph.one(SUB, "orders-blob-created").inputs)
    dest = sub["deadLetterWithResourceIdentity"]["deadLetterDestination"]
    dest["blob_container_name"] = dest.pop("blobContainerName")
    problems = input_problems(sub, az.eventgrid.SystemTopicEventSubscriptionArgs)
    assert len(problems) == 1 and "blob_container_name" in problems[0]
    # a union-typed destination given as a snake_case dict is caught too
    sub["deliveryWithResourceIdentity"]["destination"] = {"endpoint_type": "EventHub"}
    assert any("endpoint_type" in p for p in input_problems(
        sub, az.eventgrid.SystemTopicEventSubscriptionArgs))


def test_subscription_filters_blob_created_by_subject_and_dead_letters_with_identity(graph):
    sub = graph.one(SUB, "orders-blob-created").inputs
    flt = sub["filter"]
    assert flt["includedEventTypes"] == ["Microsoft.Storage.BlobCreated"]
    assert flt["subjectBeginsWith"] == "/blobServices/default/containers/raw/blobs/raw/orders/"
    assert "subjectEndsWith" not in flt
    assert flt["advancedFilters"] == [{"operatorType": "NumberGreaterThan",
                                       "key": "data.contentLength", "value": 0}]
    hub = graph.one("azure-native:eventhub:EventHub", "orders-notifications")
    delivery = sub["deliveryWithResourceIdentity"]
    assert delivery["identity"] == {"type": "SystemAssigned"}
    assert delivery["destination"]["endpointType"] == "EventHub"
    assert delivery["destination"]["resourceId"].endswith(
        "/providers/Microsoft.EventHub/namespaces/" + hub.inputs["namespaceName"]
        + "/eventhubs/notifications")
    dead = sub["deadLetterWithResourceIdentity"]
    assert dead["identity"] == {"type": "SystemAssigned"}
    assert dead["deadLetterDestination"]["endpointType"] == "StorageBlob"
    assert dead["deadLetterDestination"]["blobContainerName"] == "eventgrid-deadletter"
    assert "destination" not in sub and "deadLetterDestination" not in sub  # no key-based forms
    assert sub["retryPolicy"]["maxDeliveryAttempts"] == 30
    # the topic's own identity may send to that hub only, and write its dead-letters
    topic = _grants(graph, "orders-topic-")
    assert _role(topic["sends-notifications"]) == "Azure Event Hubs Data Sender"
    assert topic["sends-notifications"]["scope"] == delivery["destination"]["resourceId"]
    assert topic["writes-deadletters"]["scope"].endswith("/containers/eventgrid-deadletter")


def test_suffix_becomes_subject_ends_with(tmp_path):
    cfg = example_config()
    cfg["headwater:pipelines"] = [dict(cfg["headwater:pipelines"][0],
                                       source={"prefix": "in/", "suffix": ".csv",
                                               "format": "csv"})]
    flt = run_program(cfg, tmp_path).one(SUB, "orders-blob-created").inputs["filter"]
    assert flt["subjectBeginsWith"] == "/blobServices/default/containers/raw/blobs/in/"
    assert flt["subjectEndsWith"] == ".csv"


def test_app_settings_are_identity_based_and_hold_no_secret(graph):
    for name in ("orders", "signups"):
        settings = _settings(graph, name)
        host = graph.one("azure-native:storage:StorageAccount", f"{name}-host").inputs
        assert settings["AzureWebJobsStorage__accountName"] == host["accountName"]
        assert "AzureWebJobsStorage" not in settings
        assert settings["EVENTHUB__fullyQualifiedNamespace"].endswith(".servicebus.windows.net")
        assert settings["WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID"] == "SystemAssigned"
        assert settings["WEBSITE_RUN_FROM_PACKAGE"].startswith(
            f"https://{host['accountName']}.blob.core.windows.net/function-packages/")
        assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "Authorization=AAD"
        for key, value in settings.items():
            lowered = value.lower()
            assert "accountkey=" not in lowered and "sharedaccesskey" not in lowered, key
            assert "sig=" not in lowered and "password" not in lowered, key
    signups = _settings(graph, "signups")
    assert signups["HEADWATER_SECRET_EMAIL_KEY"] == (
        "@Microsoft.KeyVault(SecretUri=https://hw-secrets.vault.azure.net/secrets/email-key/)")
    assert json.loads(_settings(graph, "orders")["HEADWATER_LOOKUP_TABLES"]) == {
        "users": "hwordersusers"}


def test_accounts_are_private_tls12_and_the_data_account_refuses_keys(graph):
    for r in graph.of("azure-native:storage:StorageAccount"):
        assert r.inputs["allowBlobPublicAccess"] is False, r.name
        assert r.inputs["minimumTlsVersion"] == "TLS1_2", r.name
        assert r.inputs["isHnsEnabled"] is False, r.name  # host leases break on ADLS Gen2
        assert r.inputs["allowSharedKeyAccess"] is (r.name.endswith("-host")), r.name
    for r in graph.of("azure-native:storage:BlobContainer"):
        assert r.inputs["publicAccess"] == "None"
    ns = graph.one("azure-native:eventhub:Namespace", "orders-events").inputs
    assert ns["disableLocalAuth"] is True and ns["minimumTlsVersion"] == "1.2"
    app = graph.one("azure-native:web:WebApp", "orders-function").inputs
    assert app["httpsOnly"] is True and app["identity"] == {"type": "SystemAssigned"}
    assert app["siteConfig"]["minTlsVersion"] == "1.2"


def test_function_roles_are_scoped_to_single_resources(graph):
    grants = _grants(graph, "orders-function-")
    got = {key: (_role(g), g["scope"].split("/providers/", 1)[1]) for key, g in grants.items()}
    host = graph.one("azure-native:storage:StorageAccount", "orders-host").inputs["accountName"]
    data = graph.one("azure-native:storage:StorageAccount", "orders-storage").inputs["accountName"]
    ns = graph.one("azure-native:eventhub:Namespace", "orders-events").inputs["namespaceName"]
    blob = f"Microsoft.Storage/storageAccounts/{data}/blobServices/default/containers/"
    hubs = f"Microsoft.EventHub/namespaces/{ns}/eventhubs/"
    assert got["reads-raw"] == ("Storage Blob Data Reader", blob + "raw")
    assert got["writes-deadletters"] == ("Storage Blob Data Contributor", blob + "deadletter")
    assert got["receives-notifications"] == ("Azure Event Hubs Data Receiver", hubs + "notifications")
    assert got["sends-processed"] == ("Azure Event Hubs Data Sender", hubs + "processed")
    assert got["reads-lookup-users"] == (
        "Storage Table Data Reader",
        f"Microsoft.Storage/storageAccounts/{data}/tableServices/default/tables/hwordersusers")
    assert got["host-blobs"] == ("Storage Blob Data Owner",
                                 f"Microsoft.Storage/storageAccounts/{host}")
    assert got["writes-claims"] == (
        "Storage Table Data Contributor",
        f"Microsoft.Storage/storageAccounts/{data}/tableServices/default/tables/hwordersclaims")
    assert [k for k, (role, _) in got.items() if role == "Storage Table Data Contributor"] == [
        "writes-claims"]  # the lookup tables stay read-only
    app = graph.one("azure-native:web:WebApp", "orders-function")
    assert len(grants) == 10
    for r in graph.of(RA):
        assert scope_problems(_role(r.inputs), r.inputs["scope"]) == [], r.name
        assert r.inputs["roleDefinitionId"].startswith(f"/subscriptions/{SUBSCRIPTION}/")
        assert r.inputs["principalType"] == "ServicePrincipal"
    assert app.inputs["name"] and all(
        g["principalId"] == grants["reads-raw"]["principalId"] for g in grants.values())
    # the Data Explorer cluster reads the processed hub with its own identity
    kusto = _grants(graph, "orders-dataexplorer-")["reads-processed"]
    assert _role(kusto) == "Azure Event Hubs Data Receiver"
    assert kusto["scope"].endswith(hubs + "processed")
    assert kusto["principalId"] != grants["reads-raw"]["principalId"]
    secret = _grants(graph, "signups-function-")["reads-secret-email-key"]
    assert _role(secret) == "Key Vault Secrets User" and secret["scope"].endswith(
        "/vaults/hw-secrets/secrets/email-key")


def test_scope_rule_refuses_groups_subscriptions_and_unknown_roles():
    assert scope_problems("Storage Blob Data Reader", f"/subscriptions/{SUBSCRIPTION}")
    assert scope_problems("Storage Blob Data Reader",
                          f"/subscriptions/{SUBSCRIPTION}/resourceGroups/g")
    assert scope_problems("Owner", f"/subscriptions/{SUBSCRIPTION}/resourceGroups/g/providers/"
                          "Microsoft.Storage/storageAccounts/a")


def test_raw_blobs_expire_after_retention_days(graph):
    rule = graph.one("azure-native:storage:ManagementPolicy", "orders-retention").inputs
    (r,) = rule["policy"]["rules"]
    assert r["definition"]["filters"]["prefixMatch"] == ["raw/raw/orders/"]
    assert r["definition"]["actions"]["baseBlob"]["delete"] == {
        "daysAfterModificationGreaterThan": 30}


def test_data_explorer_table_mapping_and_identity_connection(graph):
    cluster = graph.one("azure-native:kusto:Cluster", "orders-cluster").inputs
    assert cluster["sku"]["name"].startswith("Dev(No SLA)") and cluster["enableAutoStop"] is True
    script = graph.one("azure-native:kusto:Script", "orders-table").inputs["scriptContent"]
    assert ".create-merge table ['orders'] (['order_id']:string" in script
    assert "['value_cents']:long" in script and "['ts']:datetime" in script
    assert "['_headwater_id']:string" in script
    table, mapping_command, dedup = script.split("\n\n")  # one control command each
    assert table.startswith(".create-merge table ['orders'] (")
    mapping = json.loads(mapping_command.split("'orders_json' '", 1)[1].rstrip("'"))
    assert {"column": "_headwater_id", "path": "$['_headwater_id']",
            "datatype": "string"} in mapping
    # Event Hubs has no idempotent send: readers who must never see a resent copy
    assert dedup == (".create-or-alter function with (folder = 'headwater', docstring = "
                     "'orders, one row per _headwater_id') ['orders_dedup']() "
                     "{ ['orders'] | summarize take_any(*) by ['_headwater_id'] }")
    conn = graph.one("azure-native:kusto:EventHubDataConnection", "orders-ingestion").inputs
    assert conn["kind"] == "EventHub" and conn["dataFormat"] == "JSON"
    assert conn["mappingRuleName"] == "orders_json" and conn["tableName"] == "orders"
    assert conn["consumerGroup"] == "dataexplorer"
    assert conn["eventHubResourceId"].endswith("/eventhubs/processed")
    assert conn["managedIdentityResourceId"].endswith("/Microsoft.Kusto/clusters/"
                                                      + cluster["clusterName"])


def test_existing_cluster_is_read_not_created(tmp_path):
    cfg = example_config()
    existing = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/shared/providers/"
                "Microsoft.Kusto/clusters/sharedadx")
    orders = copy.deepcopy(cfg["headwater:pipelines"][0])
    orders["sink"]["existing"] = existing
    cfg["headwater:pipelines"] = [orders]
    graph = run_program(cfg, tmp_path)
    (cluster,) = graph.of("azure-native:kusto:Cluster")
    assert cluster.read
    db = graph.one("azure-native:kusto:ReadWriteDatabase", "orders-database").inputs
    assert db["resourceGroupName"] == "shared" and db["clusterName"] == "sharedadx"


def _refused(cfg: dict[str, Any], tmp_path: Path) -> str:
    with pytest.raises(pulumi.RunError) as info:
        run_program(cfg, tmp_path)
    return str(info.value)


def test_recursion_is_refused_at_plan_time(tmp_path):
    cfg = example_config()
    orders = copy.deepcopy(cfg["headwater:pipelines"][0])
    orders["deadletter"] = {"bucket": "raw", "prefix": "raw/orders/dl/"}
    cfg["headwater:pipelines"] = [orders]
    msg = _refused(cfg, tmp_path)
    assert "overlaps its source" in msg and "dead-letter" in msg


def test_dead_letters_in_the_raw_container_outside_the_source_prefix_are_allowed(tmp_path):
    cfg = example_config()
    orders = copy.deepcopy(cfg["headwater:pipelines"][0])
    orders["deadletter"] = {"bucket": "raw", "prefix": "failed/"}
    cfg["headwater:pipelines"] = [orders]
    grants = _grants(run_program(cfg, tmp_path), "orders-function-")
    assert _role(grants["reads-raw"]) == "Storage Blob Data Contributor"
    assert "writes-deadletters" not in grants


@pytest.mark.parametrize("change, expected", [
    ({"overrides": {"azure": {"function": {"site_confg": {}}}}}, "Did you mean site_config"),
    ({"overrides": {"azure": {"funtion": {}}}}, "Did you mean function"),
    ({"sink": {"table": "orders", "columns": {"a": "geography"}}}, "unknown type 'geography'"),
    ({"sink": {"table": "orders", "columns": {"a": "string"}, "existing": "adx"}},
     "Data Explorer cluster resource id"),
    ({"secrets": {"k": "my-secret"}}, "Key Vault secret resource id"),
    ({"limits": {"timeout_s": 900}}, "Consumption plan"),
    ({"source": {"prefix": "raw/orders/", "bucket": "other"}}, "source.bucket"),
])
def test_specs_azure_cannot_deploy_are_refused_with_the_fix(tmp_path, change, expected):
    cfg = example_config()
    orders = dict(copy.deepcopy(cfg["headwater:pipelines"][0]), **change)
    cfg["headwater:pipelines"] = [orders]
    assert expected in _refused(cfg, tmp_path)


def test_overrides_are_merged_into_the_child(tmp_path):
    cfg = example_config()
    orders = copy.deepcopy(cfg["headwater:pipelines"][0])
    orders["overrides"] = {"azure": {"notifications_hub": {"partition_count": 8}}}
    cfg["headwater:pipelines"] = [orders]
    hub = run_program(cfg, tmp_path).one("azure-native:eventhub:EventHub", "orders-notifications")
    assert hub.inputs["partitionCount"] == 8


def test_claims_table_and_the_lease_beyond_the_function_timeout_are_app_settings(graph, tmp_path):
    for name in ("orders", "signups"):
        settings = _settings(graph, name)
        table = graph.one("azure-native:storage:Table", f"{name}-claims").inputs
        data = graph.one("azure-native:storage:StorageAccount", f"{name}-storage").inputs
        assert table["tableName"] == settings["HEADWATER_IDEMPOTENCY_TABLE"] == f"hw{name}claims"
        assert table["accountName"] == data["accountName"]
        # limits.timeout_s defaults to 60: host.json's value, and the lease 30 s beyond it
        assert settings["AzureFunctionsJobHost__functionTimeout"] == "00:01:00"
        assert settings["HEADWATER_LEASE_S"] == "90"
    config = example_config()
    config["headwater:pipelines"] = [copy.deepcopy(config["headwater:pipelines"][0])]
    chain = config["headwater:pipelines"][0]["transforms"]
    next(s for s in chain if s["use"] == "enrich")["with"]["table"] = "claims"
    with pytest.raises(Exception, match="lookup table 'claims' would be Table Storage table "
                                        "'hwordersclaims', the pipeline's claims table"):
        run_program(config, tmp_path)


def test_function_settings_output_is_headwaters_app_settings_without_secret_refs(graph):
    """`headwater replay` on Azure runs with this output: headwater's own app settings,
    without the Key Vault references (the operator's shell supplies a secret's value)."""
    out = graph.outputs["function_settings"]
    assert sorted(out) == ["orders", "signups"]
    for name, settings in out.items():
        app = _settings(graph, name)
        assert settings == {k: v for k, v in app.items() if k.startswith("HEADWATER_")
                            and not k.startswith("HEADWATER_SECRET_")}
        assert "HEADWATER_BLOB_ACCOUNT_URL" in settings and "HEADWATER_PROCESSED_HUB" in settings
    assert "HEADWATER_SECRET_EMAIL_KEY" in _settings(graph, "signups")
    assert "HEADWATER_SECRET_EMAIL_KEY" not in out["signups"]


def test_a_pipeline_without_lookups_gets_an_empty_object_of_tables(graph):
    """Output.all() of no tables is a list: written as such, the handler refused it
    ("must be a JSON object") on every invocation of a pipeline without `enrich`."""
    from runtimes.core.env import env_json

    assert _settings(graph, "signups")["HEADWATER_LOOKUP_TABLES"] == "{}"
    for name in ("orders", "signups"):
        value = _settings(graph, name)["HEADWATER_LOOKUP_TABLES"]
        os.environ["HEADWATER_LOOKUP_TABLES"] = value
        try:
            assert isinstance(env_json("HEADWATER_LOOKUP_TABLES"), dict), (name, value)
        finally:
            del os.environ["HEADWATER_LOOKUP_TABLES"]
    assert set(json.loads(_settings(graph, "orders")["HEADWATER_LOOKUP_TABLES"])) == {"users"}


def test_insights_app_ids_output_is_each_pipelines_application_insights_app_id(graph):
    """`headwater status` queries api.applicationinsights.io/v1/apps/{appId} with it; the
    dead-letter container and blob endpoint it lists come from `function_settings`."""
    out = graph.outputs["insights_app_ids"]
    assert sorted(out) == ["orders", "signups"]
    for name, app_id in out.items():
        component = graph.one("azure-native:applicationinsights:Component", f"{name}-insights")
        assert app_id == component.outputs["appId"] and len(app_id) == 36
    assert len(set(out.values())) == 2
    settings = graph.outputs["function_settings"]["orders"]
    assert {"HEADWATER_BLOB_ACCOUNT_URL", "HEADWATER_DEADLETTER_CONTAINER",
            "HEADWATER_DEADLETTER_PREFIX"} <= set(settings)
