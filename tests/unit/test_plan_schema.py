"""The schema and naming checks of ``headwater plan`` on single resources: what the
program's escape hatches cannot plant (a top-level name the SDK does not know, a
deprecated resource type) and each naming rule of each service."""

from __future__ import annotations

import pytest

from headwater.plan.names import name_violations
from headwater.plan.schema import schema_violations
from headwater.program import Res

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


AZ = "azure-native:"


def messages(violations) -> list[str]:
    return [f"{v.rule}: {v.message} | {v.fix}" for v in violations]


def test_a_top_level_name_the_sdk_does_not_know_is_reported_with_a_suggestion():
    res = Res("aws:sqs/queue:Queue", "q", {"visibilityTimeoutSecond": 60,
                                           "sqsManagedSseEnabled": True})
    (found,) = messages(schema_violations([res]))
    assert found.startswith("sdk-unknown-property: visibilityTimeoutSecond is not a property "
                            "of QueueArgs | did you mean visibility_timeout_seconds?")


def test_nested_lists_of_objects_are_checked_item_by_item():
    res = Res("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "life", {
        "bucket": "b", "rules": [{"id": "a", "status": "Enabled"},
                                 {"id": "b", "status": "Enabled", "expiration": {"dayz": 3}}]})
    (found,) = messages(schema_violations([res]))
    assert "rules[1].expiration.dayz is not a property of" in found


def test_a_deprecated_resource_type_is_reported_with_the_sdks_note():
    res = Res("aws:ec2/encryptionControl:EncryptionControl", "ctl", {})
    found = messages(schema_violations([res]))
    assert any("sdk-deprecated: aws:ec2/encryptionControl:EncryptionControl is deprecated" in f
               and "VpcEncryptionControl" in f for f in found)


def test_a_type_no_installed_sdk_knows_is_reported():
    found = messages(schema_violations([Res("aws:s3/bukket:Bukket", "b", {}),
                                        Res("nosuchcloud:x/y:Y", "y", {})]))
    assert "sdk-unknown-resource: cannot check aws:s3/bukket:Bukket: pulumi_aws has no " \
           "resource type aws:s3/bukket:Bukket" in found[0]
    assert "its provider SDK pulumi_nosuchcloud is not installed" in found[1]


def test_whole_numbers_pass_as_int_fractions_do_not_and_components_and_reads_are_skipped():
    ok = Res("aws:sqs/queue:Queue", "q", {"visibilityTimeoutSeconds": 360.0})
    bad = Res("aws:sqs/queue:Queue", "q2", {"visibilityTimeoutSeconds": 360.5})
    read = Res("aws:sqs/queue:Queue", "q3", {"nonsense": 1}, read=True)
    component = Res("headwater:aws:Pipeline", "p", {"anything": 1})
    (found,) = messages(schema_violations([ok, bad, read, component]))
    assert "sdk-value-type: visibilityTimeoutSeconds is float 360.5, but the SDK types it int" \
        in found


@pytest.mark.parametrize(("typ", "prop", "value", "text"), [
    ("aws:s3/bucket:Bucket", "bucket", "Orders", "breaks the character rule"),
    ("aws:s3/bucket:Bucket", "bucket", "ab", "has 2 characters"),
    ("aws:s3/bucket:Bucket", "bucket", "sthree-orders", "starts with 'sthree-'"),
    ("aws:s3/bucket:Bucket", "bucket", "amzn-s3-demo-orders", "starts with 'amzn-s3-demo-'"),
    ("aws:s3/bucket:Bucket", "bucket", "orders-s3alias", "ends with '-s3alias'"),
    ("aws:s3/bucket:Bucket", "bucket", "orders--ol-s3", "ends with '--ol-s3'"),
    ("aws:s3/bucket:Bucket", "bucket", "192.168.5.4", "formatted as an IP address"),
    ("aws:s3/bucket:Bucket", "bucket", "a..b", "two adjacent periods"),
    ("aws:s3/bucket:Bucket", "bucketPrefix", "o" * 38, "has 38 characters"),
    ("aws:sqs/queue:Queue", "name", "q" * 81, "has 81 characters"),
    ("aws:lambda/function:Function", "name", "fn.v2", "breaks the character rule"),
    ("aws:iam/role:Role", "namePrefix", "r" * 39, "has 39 characters"),
    ("aws:dynamodb/table:Table", "name", "users table", "breaks the character rule"),
    ("aws:glue/catalogTable:CatalogTable", "name", "Orders", "breaks the character rule"),
    ("aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream", "name", "s" * 65,
     "has 65 characters"),
    ("aws:cloudwatch/logGroup:LogGroup", "name", "aws/orders", "starts with 'aws/'"),
    ("gcp:storage/bucket:Bucket", "name", "goog-orders", "starts with 'goog'"),
    ("gcp:storage/bucket:Bucket", "name", "my-google-raw", "contains 'google'"),
    ("gcp:storage/bucket:Bucket", "name", "Orders-Raw", "breaks the character rule"),
    ("gcp:pubsub/topic:Topic", "name", "1orders", "breaks the character rule"),
    ("gcp:pubsub/subscription:Subscription", "name", "goog-sub", "starts with 'goog'"),
    ("gcp:cloudfunctionsv2/function:Function", "name", "orders_fn", "breaks the character rule"),
    ("gcp:serviceaccount/account:Account", "accountId", "hw-fn", "has 5 characters"),
    ("gcp:bigquery/dataset:Dataset", "datasetId", "orders-ds", "breaks the character rule"),
    ("gcp:firestore/database:Database", "name", "Users", "breaks the character rule"),
    (AZ + "storage:StorageAccount", "accountName", "hw-orders-1a2b3c4d",
     "breaks the character rule"),
    (AZ + "storage:StorageAccount", "accountName", "hwordersdata1a2b3c4d5e6f7",
     "has 25 characters"),
    (AZ + "storage:StorageAccount", "accountName", "ordersdata",
     "does not end with a hash or number tail"),
    (AZ + "storage:StorageAccount", "accountName", "microsoftdata1a2b3c4d", "contains 'microsoft'"),
    (AZ + "storage:BlobContainer", "containerName", "dead--letter", "breaks the character rule"),
    (AZ + "storage:BlobContainer", "containerName", "Raw", "breaks the character rule"),
    (AZ + "storage:BlobContainer", "containerName", "dl", "has 2 characters"),
    (AZ + "storage:Table", "tableName", "1users", "breaks the character rule"),
    (AZ + "storage:Table", "tableName", "hw_users", "breaks the character rule"),
    (AZ + "storage:Table", "tableName", "tables", "which the Table service reserves"),
    (AZ + "storage:ManagementPolicy", "managementPolicyName", "raw", "breaks the character rule"),
    (AZ + "eventhub:Namespace", "namespaceName", "hw-ns", "has 5 characters"),
    (AZ + "eventhub:Namespace", "namespaceName", "1hw-orders-ns-1a2b3c4d", "breaks the character"),
    (AZ + "eventhub:Namespace", "namespaceName", "hw-orders-1a2b3c4d-sb", "ends with '-sb'"),
    (AZ + "eventhub:EventHub", "eventHubName", "-notifications", "breaks the character rule"),
    (AZ + "eventhub:EventHub", "eventHubName", "n" * 257, "has 257 characters"),
    (AZ + "eventhub:ConsumerGroup", "consumerGroupName", "c" * 51, "has 51 characters"),
    (AZ + "web:WebApp", "name", "hw-orders-fn-1a2b3c4d-", "breaks the character rule"),
    (AZ + "web:WebApp", "name", "login-orders-1a2b3c4d", "starts with 'login'"),
    (AZ + "web:WebApp", "name", "orders-function", "does not end with a hash or number tail"),
    (AZ + "kusto:Cluster", "clusterName", "1adx1a2b3c4d", "breaks the character rule"),
    (AZ + "kusto:Cluster", "clusterName", "hwordersadx1a2b3c4d5e6f7", "has 24 characters"),
    (AZ + "kusto:Cluster", "clusterName", "hwordersadx", "does not end with a hash"),
    (AZ + "kusto:ReadWriteDatabase", "databaseName", "orders/db", "breaks the character rule"),
    (AZ + "eventgrid:SystemTopicEventSubscription", "eventSubscriptionName", "orders_blob",
     "breaks the character rule"),
    (AZ + "operationalinsights:Workspace", "workspaceName", "log", "has 3 characters"),
    (AZ + "resources:ResourceGroup", "resourceGroupName", "orders-rg.", "breaks the character"),
    (AZ + "authorization:RoleAssignment", "roleAssignmentName", "orders-reads-raw",
     "has 16 characters"),
])
def test_each_naming_rule_refuses_what_the_service_refuses(typ, prop, value, text):
    violations = name_violations([Res(typ, "r", {prop: value})])
    (found,) = [v for v in violations if text in v.message]  # a name may break more rules
    assert found.rule == "physical-name" and prop in found.message
    assert found.fix.startswith(f"choose a {prop} of")


@pytest.mark.parametrize(("typ", "prop", "value"), [
    ("aws:s3/bucket:Bucket", "bucket", "orders-raw-2024.eu"),
    ("aws:s3/bucket:Bucket", "bucketPrefix", "orders-raw-"),
    ("aws:sqs/queue:Queue", "name", "orders-queue.fifo"),
    ("aws:lambda/function:Function", "name", "headwater-aws-orders"),
    ("aws:cloudwatch/logGroup:LogGroup", "name", "/aws/lambda/headwater-aws-orders"),
    ("aws:glue/catalogDatabase:CatalogDatabase", "name", "headwater_aws_orders"),
    ("gcp:storage/bucket:Bucket", "name", "orders-raw_2024.eu"),
    ("gcp:pubsub/topic:Topic", "name", "orders-topic~1"),
    ("gcp:serviceaccount/account:Account", "accountId", "hw-orders-fn"),
    ("gcp:firestore/database:Database", "name", "(default)"),
    (AZ + "storage:StorageAccount", "accountName", "hwordersdata1a2b3c4d"),
    (AZ + "storage:StorageAccount", "accountName", "contosoorders2024"),
    (AZ + "storage:BlobContainer", "containerName", "eventgrid-deadletter"),
    (AZ + "storage:Table", "tableName", "hwordersusers"),
    (AZ + "eventhub:Namespace", "namespaceName", "hw-orders-ns-1a2b3c4d"),
    (AZ + "eventhub:EventHub", "eventHubName", "orders.processed_v2"),
    (AZ + "web:WebApp", "name", "hw-orders-fn-1a2b3c4d"),
    (AZ + "kusto:Cluster", "clusterName", "hwordersadx1a2b3c4d"),
    (AZ + "kusto:ReadWriteDatabase", "databaseName", "orders db.v2"),
    (AZ + "resources:ResourceGroup", "resourceGroupName", "headwater(orders)_rg"),
    (AZ + "authorization:RoleAssignment", "roleAssignmentName",
     "0f8fad5b-d9cb-469f-a165-70867728950e"),
])
def test_names_the_service_accepts_pass(typ, prop, value):
    assert name_violations([Res(typ, "r", {prop: value})]) == []


def test_a_name_generated_from_a_long_logical_name_is_checked():
    (found,) = name_violations([Res("aws:lambda/function:Function", "f" * 60, {})])
    assert "name (generated from the logical name)" in found.message
    assert "has 68 characters" in found.message


def test_an_azure_name_generated_from_a_long_logical_name_is_checked():
    """azure-native appends 8 random characters, without a dash."""
    (found,) = name_violations([Res(AZ + "resources:ResourceGroup", "g" * 85, {})])
    assert "resourceGroupName (generated from the logical name)" in found.message
    assert "has 93 characters" in found.message
    assert name_violations([Res(AZ + "resources:ResourceGroup", "orders-rg", {})]) == []
