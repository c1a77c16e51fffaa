"""Physical names against the service's naming rule: length, characters, reserved
prefixes and suffixes. A name the cloud refuses otherwise passes every mock and fails
only in a real deployment.

One table per cloud (:data:`AWS`, :data:`GCP`, :data:`AZURE`), merged into :data:`NAME_RULES`: resource type ->
property -> :class:`NameRule`. A ``...Prefix`` property is checked as a prefix (the
provider appends a unique suffix, so its room is the name's minus that suffix). Where the
program sets no name, Pulumi derives one from the logical name (``<logical>-<7 chars>``);
that name is checked too (:data:`AUTONAMED`; azure-native appends 8 random characters
without a dash). Adding a cloud means adding its table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .violation import Violation

__all__ = ["AUTONAMED", "AWS", "AZURE", "GCP", "NAME_RULES", "NameRule", "name_violations"]

AUTONAME_SUFFIX = 8  # Pulumi's autonaming appends "-" and 7 random characters


@dataclass(frozen=True)
class NameRule:
    """``what`` (e.g. "S3 bucket name") must be ``min_len``..``max_len`` characters, match
    ``pattern`` (``allowed`` says it in words), start with none of ``reserved_prefixes``,
    end with none of ``reserved_suffixes``, contain none of ``forbidden`` and each of
    ``required`` (both ``(regex, why)``)."""

    what: str
    min_len: int
    max_len: int
    pattern: str
    allowed: str
    reserved_prefixes: tuple[str, ...] = ()
    reserved_suffixes: tuple[str, ...] = ()
    forbidden: tuple[tuple[str, str], ...] = ()
    prefix: bool = False  # a name prefix: the provider appends a unique suffix
    required: tuple[tuple[str, str], ...] = ()  # (regex the name must contain, why)

    def problems(self, name: str) -> list[str]:
        out = []
        kind = f"{self.what} prefix" if self.prefix else self.what
        if (not self.prefix and len(name) < self.min_len) or len(name) > self.max_len:
            limit = (f"at most {self.max_len}" if self.prefix
                     else f"{self.min_len} to {self.max_len}")
            out.append(f"{kind} {name!r} has {len(name)} characters; {self.what}s have {limit}")
        if not re.fullmatch(self.pattern, name):
            out.append(f"{kind} {name!r} breaks the character rule: {self.allowed}")
        for reserved in self.reserved_prefixes:
            if name.startswith(reserved):
                out.append(f"{kind} {name!r} starts with {reserved!r}, which the service reserves")
        if not self.prefix:
            for reserved in self.reserved_suffixes:
                if name.endswith(reserved):
                    out.append(f"{kind} {name!r} ends with {reserved!r}, which the service reserves")
        for regex, why in self.forbidden:
            if re.search(regex, name):
                out.append(f"{kind} {name!r} {why}")
        for regex, why in self.required:
            if not re.search(regex, name):
                out.append(f"{kind} {name!r} {why}")
        return out


def _as_prefix(rule: NameRule, pattern: str, room: int = 26) -> NameRule:
    """The rule for the ``...Prefix`` property: the provider appends ``room`` characters
    (a timestamp and a counter), so the prefix has the name's room minus that."""
    return NameRule(rule.what, 1, rule.max_len - room, pattern, rule.allowed,
                    rule.reserved_prefixes, (), rule.forbidden, prefix=True)


_BUCKET = NameRule(
    "S3 bucket name", 3, 63, r"[a-z0-9][a-z0-9.-]*[a-z0-9]",
    "lower-case letters, digits, '.' and '-', starting and ending with a letter or digit",
    reserved_prefixes=("xn--", "sthree-", "amzn-s3-demo-"),
    reserved_suffixes=("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"),
    forbidden=((r"\.\.", "has two adjacent periods"),
               (r"^\d{1,3}(\.\d{1,3}){3}$", "is formatted as an IP address")))
_BUCKET_PREFIX = NameRule(
    "S3 bucket name", 1, 37, r"[a-z0-9][a-z0-9.-]*",
    "lower-case letters, digits, '.' and '-', starting with a letter or digit",
    reserved_prefixes=_BUCKET.reserved_prefixes,
    forbidden=((r"\.\.", "has two adjacent periods"),), prefix=True)
_QUEUE = NameRule("SQS queue name", 1, 80, r"[A-Za-z0-9_-]+(\.fifo)?",
                  "letters, digits, '-' and '_' (a FIFO queue ends with '.fifo')")
_FUNCTION = NameRule("Lambda function name", 1, 64, r"[A-Za-z0-9_-]+",
                     "letters, digits, '-' and '_'")
_ROLE = NameRule("IAM role name", 1, 64, r"[\w+=,.@-]+",
                 "letters, digits and '+=,.@-_'")
_ROLE_POLICY = NameRule("IAM policy name", 1, 128, r"[\w+=,.@-]+",
                        "letters, digits and '+=,.@-_'")
_TABLE = NameRule("DynamoDB table name", 3, 255, r"[A-Za-z0-9_.-]+",
                  "letters, digits, '_', '-' and '.'")
_GLUE = NameRule("Glue/Athena name", 1, 255, r"[a-z0-9_]+",
                 "lower-case letters, digits and '_' (Athena's rule; Glue lower-cases names)")
_STREAM = NameRule("Firehose stream name", 1, 64, r"[A-Za-z0-9_.-]+",
                   "letters, digits, '_', '-' and '.'")
_LOG_GROUP = NameRule("CloudWatch log group name", 1, 512, r"[A-Za-z0-9_./#-]+",
                      "letters, digits and '_-/.#'", reserved_prefixes=("aws/",))
_TOPIC = NameRule("SNS topic name", 1, 256, r"[A-Za-z0-9_-]+(\.fifo)?",
                  "letters, digits, '-' and '_' (a FIFO topic ends with '.fifo')")

AWS: dict[str, dict[str, NameRule]] = {
    "aws:s3/bucket:Bucket": {"bucket": _BUCKET, "bucketPrefix": _BUCKET_PREFIX},
    "aws:sqs/queue:Queue": {"name": _QUEUE, "namePrefix": _as_prefix(_QUEUE, r"[A-Za-z0-9_-]+")},
    "aws:lambda/function:Function": {"name": _FUNCTION},
    "aws:iam/role:Role": {"name": _ROLE, "namePrefix": _as_prefix(_ROLE, _ROLE.pattern)},
    "aws:iam/rolePolicy:RolePolicy": {"name": _ROLE_POLICY,
                                      "namePrefix": _as_prefix(_ROLE_POLICY, _ROLE.pattern)},
    "aws:iam/policy:Policy": {"name": _ROLE_POLICY,
                              "namePrefix": _as_prefix(_ROLE_POLICY, _ROLE.pattern)},
    "aws:dynamodb/table:Table": {"name": _TABLE},
    "aws:glue/catalogDatabase:CatalogDatabase": {"name": _GLUE},
    "aws:glue/catalogTable:CatalogTable": {"name": _GLUE, "databaseName": _GLUE},
    "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream": {"name": _STREAM},
    "aws:cloudwatch/logGroup:LogGroup": {"name": _LOG_GROUP,
                                         "namePrefix": _as_prefix(_LOG_GROUP, _LOG_GROUP.pattern)},
    "aws:sns/topic:Topic": {"name": _TOPIC, "namePrefix": _as_prefix(_TOPIC, r"[A-Za-z0-9_-]+")},
}

_GCS_BUCKET = NameRule(
    "Cloud Storage bucket name", 3, 63, r"[a-z0-9][a-z0-9._-]*[a-z0-9]",
    "lower-case letters, digits, '-', '_' and '.', starting and ending with a letter or digit",
    reserved_prefixes=("goog",),
    forbidden=((r"google|g00gle", "contains 'google', which Cloud Storage reserves"),
               (r"\.\.", "has two adjacent periods"),
               (r"^\d{1,3}(\.\d{1,3}){3}$", "is formatted as an IP address")))
_PUBSUB = NameRule("Pub/Sub topic or subscription name", 3, 255, r"[A-Za-z][A-Za-z0-9._~+%-]*",
                   "letters, digits and '-_.~+%', starting with a letter",
                   reserved_prefixes=("goog",))
_GCF = NameRule("Cloud Functions name", 1, 63, r"[a-z]([a-z0-9-]*[a-z0-9])?",
                "lower-case letters, digits and '-', starting with a letter, not ending with '-'")
_SERVICE_ACCOUNT = NameRule("service account id", 6, 30, r"[a-z]([a-z0-9-]*[a-z0-9])?",
                            "lower-case letters, digits and '-', starting with a letter")
_DATASET = NameRule("BigQuery dataset id", 1, 1024, r"[A-Za-z0-9_]+",
                    "letters, digits and '_'")
_BQ_TABLE = NameRule("BigQuery table id", 1, 1024, r"[\w -]+",
                     "letters, digits, '_', '-' and spaces")
_FIRESTORE = NameRule("Firestore database id", 4, 63, r"[a-z][a-z0-9-]*[a-z0-9]|\(default\)",
                      "lower-case letters, digits and '-', starting with a letter")

GCP: dict[str, dict[str, NameRule]] = {
    "gcp:storage/bucket:Bucket": {"name": _GCS_BUCKET},
    "gcp:pubsub/topic:Topic": {"name": _PUBSUB},
    "gcp:pubsub/subscription:Subscription": {"name": _PUBSUB},
    "gcp:cloudfunctionsv2/function:Function": {"name": _GCF},
    "gcp:serviceaccount/account:Account": {"accountId": _SERVICE_ACCOUNT},
    "gcp:bigquery/dataset:Dataset": {"datasetId": _DATASET},
    "gcp:bigquery/table:Table": {"datasetId": _DATASET, "tableId": _BQ_TABLE},
    "gcp:firestore/database:Database": {"name": _FIRESTORE},
}

# Azure: "Naming rules and restrictions for Azure resources",
# https://learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules
# (lengths and characters per resource provider), with the reserved words of "Resolve
# reserved resource name errors" (.../resource-manager-reserved-resource-name) for names
# that become public DNS names, and the Service Bus/Event Hubs namespace rule that a name
# must not end with "-sb" or "-mgmt" (REST API, Namespaces - Create Or Update).
_RESERVED_WORDS = ((r"(?i)microsoft|windows", "contains 'microsoft' or 'windows', which Azure "
                    "reserves in names with a public endpoint"),)
_RESERVED_STARTS = ("login", "xbox")
# Names in a namespace shared by every Azure customer (a DNS label: <name>.blob.core.
# windows.net, <name>.azurewebsites.net ...): a plain word is most likely taken, and the
# deployment fails only then. A stable hash tail (components/azure/checks.global_name)
# makes a collision unlikely, so a global name must end with one.
_UNIQUE_TAIL = ((r"([0-9a-f]{6,}|\d{4,})$", "does not end with a hash or number tail (6+ hex "
                 "characters or 4+ digits), so it is likely taken by another Azure customer: "
                 "names in this namespace are global"),)
_STORAGE_ACCOUNT = NameRule(
    "storage account name", 3, 24, r"[a-z0-9]+", "lower-case letters and digits only",
    reserved_prefixes=_RESERVED_STARTS, forbidden=_RESERVED_WORDS, required=_UNIQUE_TAIL)
_CONTAINER = NameRule(
    "blob container name", 3, 63, r"[a-z0-9](-?[a-z0-9])*",
    "lower-case letters, digits and single '-' between them, starting and ending with a "
    "letter or digit")
_STORAGE_TABLE = NameRule(
    "Table Storage table name", 3, 63, r"[A-Za-z][A-Za-z0-9]*",
    "letters and digits, starting with a letter",
    forbidden=((r"(?i)^tables$", "is 'tables', which the Table service reserves"),))
_POLICY_NAME = NameRule("management policy name", 7, 7, r"default", "exactly 'default'")
_NAMESPACE = NameRule(
    "Event Hubs namespace name", 6, 50, r"[A-Za-z][A-Za-z0-9-]*[A-Za-z0-9]",
    "letters, digits and '-', starting with a letter and ending with a letter or digit",
    reserved_prefixes=_RESERVED_STARTS, reserved_suffixes=("-sb", "-mgmt"),
    forbidden=_RESERVED_WORDS, required=_UNIQUE_TAIL)
_HUB_CHARS = r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?"
_HUB_ALLOWED = "letters, digits, '.', '_' and '-', starting and ending with a letter or digit"
_EVENT_HUB = NameRule("event hub name", 1, 256, _HUB_CHARS, _HUB_ALLOWED)
_CONSUMER_GROUP = NameRule("consumer group name", 1, 50, _HUB_CHARS, _HUB_ALLOWED)
_SITE = NameRule(
    "Function App (site) name", 2, 60, r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?",
    "letters, digits and '-', not starting or ending with '-'",
    reserved_prefixes=_RESERVED_STARTS, forbidden=_RESERVED_WORDS, required=_UNIQUE_TAIL)
_SERVER_FARM = NameRule("App Service plan name", 1, 60, r"[A-Za-z0-9-]+",
                        "letters, digits and '-'")
_KUSTO_CLUSTER = NameRule(
    "Data Explorer cluster name", 4, 22, r"[a-z][a-z0-9]*",
    "lower-case letters and digits, starting with a letter",
    reserved_prefixes=_RESERVED_STARTS, forbidden=_RESERVED_WORDS, required=_UNIQUE_TAIL)
_KUSTO_DATABASE = NameRule("Data Explorer database name", 1, 260, r"[A-Za-z0-9 .-]+",
                           "letters, digits, ' ', '.' and '-'")
_KUSTO_CONNECTION = NameRule("Data Explorer data connection name", 1, 40, r"[A-Za-z0-9 .-]+",
                             "letters, digits, ' ', '.' and '-'")
_SYSTEM_TOPIC = NameRule("Event Grid system topic name", 3, 128, r"[A-Za-z0-9-]+",
                         "letters, digits and '-'")
_EVENT_SUBSCRIPTION = NameRule("Event Grid event subscription name", 3, 64, r"[A-Za-z0-9-]+",
                               "letters, digits and '-'")
_WORKSPACE = NameRule(
    "Log Analytics workspace name", 4, 63, r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?",
    "letters, digits and '-', starting and ending with a letter or digit")
_INSIGHTS = NameRule("Application Insights name", 1, 260, r"[^%&\\?/]*[^%&\\?/. ]",
                     "any characters but '%&\\?/', not ending with '.' or ' '")
_RESOURCE_GROUP = NameRule("resource group name", 1, 90, r"[\w().-]*[\w()-]",
                           "letters, digits, '_', '(', ')', '-' and '.', not ending with '.'")
_ROLE_ASSIGNMENT = NameRule(
    "role assignment name", 36, 36, r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}",
    "a GUID (8-4-4-4-12 hexadecimal digits)")

AZURE: dict[str, dict[str, NameRule]] = {
    "azure-native:storage:StorageAccount": {"accountName": _STORAGE_ACCOUNT},
    "azure-native:storage:BlobContainer": {"containerName": _CONTAINER},
    "azure-native:storage:Table": {"tableName": _STORAGE_TABLE},
    "azure-native:storage:ManagementPolicy": {"managementPolicyName": _POLICY_NAME},
    "azure-native:eventhub:Namespace": {"namespaceName": _NAMESPACE},
    "azure-native:eventhub:EventHub": {"eventHubName": _EVENT_HUB},
    "azure-native:eventhub:ConsumerGroup": {"consumerGroupName": _CONSUMER_GROUP},
    "azure-native:web:WebApp": {"name": _SITE},
    "azure-native:web:AppServicePlan": {"name": _SERVER_FARM},
    "azure-native:kusto:Cluster": {"clusterName": _KUSTO_CLUSTER},
    "azure-native:kusto:ReadWriteDatabase": {"databaseName": _KUSTO_DATABASE},
    "azure-native:kusto:EventHubDataConnection": {"dataConnectionName": _KUSTO_CONNECTION},
    "azure-native:eventgrid:SystemTopic": {"systemTopicName": _SYSTEM_TOPIC},
    "azure-native:eventgrid:SystemTopicEventSubscription": {
        "eventSubscriptionName": _EVENT_SUBSCRIPTION},
    "azure-native:operationalinsights:Workspace": {"workspaceName": _WORKSPACE},
    "azure-native:applicationinsights:Component": {"resourceName": _INSIGHTS},
    "azure-native:resources:ResourceGroup": {"resourceGroupName": _RESOURCE_GROUP},
    "azure-native:authorization:RoleAssignment": {"roleAssignmentName": _ROLE_ASSIGNMENT},
}

# type -> (the property Pulumi autonames, the property that replaces autonaming)
AUTONAMED: dict[str, tuple[str, str]] = {
    "aws:s3/bucket:Bucket": ("bucket", "bucketPrefix"),
    "aws:sqs/queue:Queue": ("name", "namePrefix"),
    "aws:lambda/function:Function": ("name", ""),
    "aws:iam/role:Role": ("name", "namePrefix"),
    "aws:dynamodb/table:Table": ("name", ""),
    "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream": ("name", ""),
    "aws:cloudwatch/logGroup:LogGroup": ("name", "namePrefix"),
    "aws:sns/topic:Topic": ("name", "namePrefix"),
    "gcp:storage/bucket:Bucket": ("name", ""),
    "gcp:pubsub/topic:Topic": ("name", ""),
    "gcp:pubsub/subscription:Subscription": ("name", ""),
    "azure-native:resources:ResourceGroup": ("resourceGroupName", ""),
    "azure-native:web:AppServicePlan": ("name", ""),
    "azure-native:eventgrid:SystemTopic": ("systemTopicName", ""),
    "azure-native:operationalinsights:Workspace": ("workspaceName", ""),
    "azure-native:applicationinsights:Component": ("resourceName", ""),
    "azure-native:eventhub:ConsumerGroup": ("consumerGroupName", ""),
}

NAME_RULES: dict[str, dict[str, NameRule]] = {**AWS, **GCP, **AZURE}


def _fix(rule: NameRule, prop: str) -> str:
    room = f"at most {rule.max_len}" if rule.prefix else f"{rule.min_len} to {rule.max_len}"
    return f"choose a {prop} of {room} characters: {rule.allowed}"


def name_violations(resources: Iterable[Any],
                    rules: Mapping[str, Mapping[str, NameRule]] = NAME_RULES) -> list[Violation]:
    """Every physical name among ``resources`` (``typ``, ``name``, ``inputs``, ``read``)
    that its service would refuse. Resources only read are skipped."""
    out: list[Violation] = []
    for res in resources:
        if res.read or res.typ not in rules:
            continue
        props = rules[res.typ]
        for prop, rule in props.items():
            value = res.inputs.get(prop)
            if isinstance(value, str):
                out += [Violation("physical-name", res.typ, res.name, f"{prop}: {p}",
                                  _fix(rule, prop)) for p in rule.problems(value)]
        auto, instead = AUTONAMED.get(res.typ, ("", ""))
        if auto and auto in props and res.inputs.get(auto) is None and \
                not (instead and res.inputs.get(instead)):
            generated = (f"{res.name}1a2b3c4d" if res.typ.startswith("azure-native:")
                         else f"{res.name}-abcdefg"[:len(res.name) + AUTONAME_SUFFIX])
            out += [Violation("physical-name", res.typ, res.name,
                              f"{auto} (generated from the logical name): {p}",
                              f"set {auto} explicitly, or shorten the logical name")
                    for p in props[auto].problems(generated)]
    return out
