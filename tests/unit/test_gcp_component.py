"""The GCP component under ``pulumi.runtime.set_mocks`` with the real pulumi_gcp SDK: the
shipped example stack (Pulumi.gcp.yaml) run through the real ``__main__.py``, its graph,
wiring, IAM scoping, and every input checked against pulumi_gcp's own types."""

from __future__ import annotations

import copy
import json
import zipfile
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from components.common import PlanError
from components.gcp.mocks import PROJECT, PROJECT_NUMBER, GcpMocks, input_problems
from headwater.testing import program as harness
from headwater.testing.program import Graph

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = "headwater:gcp:Pipeline"
PUBSUB_AGENT = f"serviceAccount:service-{PROJECT_NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com"
GCS_AGENT = f"serviceAccount:service-{PROJECT_NUMBER}@gs-project-accounts.iam.gserviceaccount.com"


def example_config() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "Pulumi.gcp.yaml").read_text(encoding="utf-8"))["config"])


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gcp") / "function.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("main.py", "def handle(request):\n    return ''\n")
    return path


def plan(config: dict[str, Any], artifact: Path) -> Graph:
    return harness.run_program(config, GcpMocks(), artifact=artifact, stack="gcp", root=ROOT)


@pytest.fixture(scope="module")
def graph(artifact: Path) -> Graph:
    return plan(example_config(), artifact)


def child(graph: Graph, typ: str, name: str) -> dict[str, Any]:
    return graph.one(f"gcp:{typ}", name).inputs


def test_two_pipelines_each_own_their_children(graph):
    assert sorted(r.name for r in graph.of(PIPELINE)) == ["orders", "signups"]
    for name in ("orders", "signups"):
        kinds = sorted(r.typ.split(":")[-1] for r in graph.children(name, PIPELINE))
        for kind in ("Bucket", "Notification", "Topic", "Subscription", "Function", "Dataset",
                     "Table", "Account", "ServiceIamMember"):
            assert kind in kinds, (name, kind)
        assert kinds.count("Topic") == 2 and kinds.count("Subscription") == 2
        assert kinds.count("Bucket") == 3  # raw, dead-letter, function source
    # only the orders chain looks rows up: only it gets a lookup database; both get state
    assert sorted(r.name for r in graph.of("gcp:firestore/database:Database")) == \
        ["orders-firestore", "orders-state", "signups-state"]
    # every GCP resource belongs to a pipeline, or to the stack's observability component
    gcp_resources = [r for r in graph.resources if r.typ.startswith("gcp:")]
    assert all(r.parent.endswith(("::orders", "::signups", "::headwater-observe"))
               for r in gcp_resources)


def test_every_input_is_an_input_of_the_real_sdk_types(graph):
    problems = [p for r in graph.resources if r.typ.startswith("gcp:")
                for p in input_problems(r.typ, r.inputs)]
    assert problems == []


def test_input_check_finds_a_misspelt_nested_key(graph):
    bucket = copy.deepcopy(child(graph, "storage/bucket:Bucket", "orders-raw"))
    bucket["lifecycleRules"][1]["condition"]["matches_prefix"] = ["raw/"]
    assert input_problems("gcp:storage/bucket:Bucket", bucket) == [
        "gcp:storage/bucket:Bucket.lifecycleRules[1].condition.matches_prefix: no such input "
        + "(known: " + bucket_condition_keys() + ")"]


def bucket_condition_keys() -> str:
    from pulumi import _types
    from pulumi_gcp.storage import outputs
    return ", ".join(sorted(_types.output_type_types(outputs.BucketLifecycleRuleCondition)))


def test_buckets_are_private_and_raw_objects_expire(graph):
    for name in ("orders-raw", "orders-deadletter", "orders-source"):
        b = child(graph, "storage/bucket:Bucket", name)
        assert b["uniformBucketLevelAccess"] is True
        assert b["publicAccessPrevention"] == "enforced"
        assert b["location"] == "EUROPE-WEST1"
    raw = child(graph, "storage/bucket:Bucket", "orders-raw")
    delete = [r for r in raw["lifecycleRules"] if r["action"]["type"] == "Delete"]
    assert delete == [{"action": {"type": "Delete"},
                       "condition": {"age": 30, "matchesPrefixes": ["raw/orders/"]}}]
    assert not [r for r in child(graph, "storage/bucket:Bucket", "orders-deadletter")[
        "lifecycleRules"] if r["action"]["type"] == "Delete"]


def test_notification_filters_the_source_prefix_into_the_topic(graph):
    raw = graph.outputs["raw_buckets"]
    for name, prefix in (("orders", "raw/orders/"), ("signups", "raw/signups/")):
        n = child(graph, "storage/notification:Notification", f"{name}-notification")
        assert n["objectNamePrefix"] == prefix
        assert n["eventTypes"] == ["OBJECT_FINALIZE"] and n["payloadFormat"] == "JSON_API_V1"
        assert n["bucket"] == raw[name]
        assert n["topic"] == graph.outputs["topics"][name]
        pub = child(graph, "pubsub/topicIAMMember:TopicIAMMember", f"{name}-gcs-publisher")
        assert pub == {"topic": n["topic"], "role": "roles/pubsub.publisher", "member": GCS_AGENT}


def test_push_subscription_dead_letters_after_five_deliveries(graph):
    sub = child(graph, "pubsub/subscription:Subscription", "orders-push")
    dl_topic = graph.outputs["dead_letter_topics"]["orders"]
    assert sub["topic"] == graph.outputs["topics"]["orders"]
    assert sub["deadLetterPolicy"] == {"deadLetterTopic": dl_topic, "maxDeliveryAttempts": 5}
    assert sub["retryPolicy"] == {"minimumBackoff": "10s", "maximumBackoff": "600s"}
    assert sub["ackDeadlineSeconds"] == 60
    fn = child(graph, "cloudfunctionsv2/function:Function", "orders-function")
    assert sub["pushConfig"]["pushEndpoint"].startswith("https://headwater-gcp-orders-")
    assert sub["pushConfig"]["oidcToken"] == {
        "serviceAccountEmail": f"hw-orders-push@{PROJECT}.iam.gserviceaccount.com",
        "audience": sub["pushConfig"]["pushEndpoint"]}
    # the dead-letter topic has its own subscription, else dead-lettered messages vanish
    dls = child(graph, "pubsub/subscription:Subscription", "orders-dead-letter-sub")
    assert dls["topic"] == dl_topic and dls["expirationPolicy"] == {"ttl": ""}
    # Pub/Sub's agent publishes to the dead-letter topic and acks on the source
    assert child(graph, "pubsub/topicIAMMember:TopicIAMMember", "orders-dead-letter-publisher") \
        == {"topic": dl_topic, "role": "roles/pubsub.publisher", "member": PUBSUB_AGENT}
    assert child(graph, "pubsub/subscriptionIAMMember:SubscriptionIAMMember",
                 "orders-dead-letter-subscriber")["member"] == PUBSUB_AGENT
    assert fn["serviceConfig"]["ingressSettings"] == "ALLOW_INTERNAL_ONLY"


def test_function_limits_runtime_and_identity(graph):
    fn = child(graph, "cloudfunctionsv2/function:Function", "orders-function")
    assert fn["name"] == "headwater-gcp-orders" and fn["location"] == "europe-west1"
    assert fn["buildConfig"]["runtime"] == "python312"
    assert fn["buildConfig"]["entryPoint"] == "handle"
    svc = fn["serviceConfig"]
    assert (svc["availableMemory"], svc["timeoutSeconds"], svc["maxInstanceCount"]) == \
        ("512M", 60, 10)
    assert svc["serviceAccountEmail"] == f"hw-orders-fn@{PROJECT}.iam.gserviceaccount.com"
    env = svc["environmentVariables"]
    assert env["HEADWATER_TABLE"] == "orders" and env["HEADWATER_DATASET"] == "headwater_gcp_orders"
    assert json.loads(env["HEADWATER_LOOKUP_COLLECTIONS"]) == {"users": "users"}
    assert env["HEADWATER_FIRESTORE_DATABASE"] == "hw-gcp-orders"
    assert env["HEADWATER_STATE_DATABASE"] == "hw-gcp-orders-state"
    assert env["HEADWATER_IDEMPOTENCY_COLLECTION"] == "processed"
    assert env["HEADWATER_TIMEOUT_S"] == "60"  # the claim's lease follows the timeout
    signups = child(graph, "cloudfunctionsv2/function:Function", "signups-function")
    assert json.loads(signups["serviceConfig"]["environmentVariables"]["HEADWATER_SECRETS"]) == \
        {"email-key": "projects/my-project/secrets/email-key"}  # a reference, not a value


def test_iam_members_are_bound_to_the_pipelines_resources(graph):
    fn = f"serviceAccount:hw-orders-fn@{PROJECT}.iam.gserviceaccount.com"
    raw = graph.outputs["raw_buckets"]["orders"]
    dl = graph.outputs["deadletter_buckets"]["orders"]
    assert child(graph, "storage/bucketIAMMember:BucketIAMMember", "orders-raw-reader") == \
        {"bucket": raw, "role": "roles/storage.objectViewer", "member": fn}
    assert child(graph, "storage/bucketIAMMember:BucketIAMMember", "orders-deadletter-writer") \
        == {"bucket": dl, "role": "roles/storage.objectCreator", "member": fn}
    assert child(graph, "bigquery/datasetIamMember:DatasetIamMember", "orders-sink-writer") == \
        {"datasetId": "headwater_gcp_orders", "role": "roles/bigquery.dataEditor", "member": fn}
    invoker = child(graph, "cloudrunv2/serviceIamMember:ServiceIamMember", "orders-push-invoker")
    assert invoker == {"name": "headwater-gcp-orders", "location": "europe-west1",
                       "role": "roles/run.invoker",
                       "member": f"serviceAccount:hw-orders-push@{PROJECT}.iam.gserviceaccount.com"}
    secret = child(graph, "secretmanager/secretIamMember:SecretIamMember",
                   "signups-secret-email-key")
    assert secret["secretId"] == "projects/my-project/secrets/email-key"
    assert secret["role"] == "roles/secretmanager.secretAccessor"
    # project bindings only for Firestore, each conditioned on one of the pipeline's
    # databases: read-only on the lookups, read-write on the state database alone
    project_level = {r.name: r.inputs for r in graph.of("gcp:projects/iAMMember:IAMMember")}
    assert sorted(project_level) == ["orders-lookup-reader", "orders-state-user",
                                     "signups-state-user"]
    lookup, state = project_level["orders-lookup-reader"], project_level["orders-state-user"]
    assert lookup["role"] == "roles/datastore.viewer" and lookup["member"] == fn
    assert lookup["condition"]["expression"] == \
        f'resource.name == "projects/{PROJECT}/databases/hw-gcp-orders"'
    assert state["role"] == "roles/datastore.user" and state["member"] == fn
    assert state["condition"]["expression"] == \
        f'resource.name == "projects/{PROJECT}/databases/hw-gcp-orders-state"'
    roles = [r.inputs["role"] for r in graph.resources if "role" in r.inputs]
    assert not {"roles/owner", "roles/editor", "roles/viewer"} & set(roles)


def test_state_database_has_a_ttl_policy_on_the_expiry_field(graph):
    db = child(graph, "firestore/database:Database", "orders-state")
    assert (db["name"], db["locationId"], db["type"]) == \
        ("hw-gcp-orders-state", "europe-west1", "FIRESTORE_NATIVE")
    ttl = child(graph, "firestore/field:Field", "orders-state-ttl")
    assert ttl == {"database": "hw-gcp-orders-state", "collection": "processed",
                   "field": "expires_at", "ttlConfig": {}, "indexConfig": {}}
    from runtimes.gcp.idempotency import EXPIRES_FIELD
    assert ttl["field"] == EXPIRES_FIELD  # the field the function writes


def test_table_is_partitioned_clustered_and_has_a_dedup_view(graph):
    table = child(graph, "bigquery/table:Table", "orders-table")
    assert table["timePartitioning"] == {"type": "DAY"}
    assert table["clusterings"] == ["user_id"]
    fields = {f["name"]: f["type"] for f in json.loads(table["schema"])}
    assert fields["value_cents"] == "INT64" and fields["ts"] == "TIMESTAMP"
    assert fields["_headwater_id"] == "STRING"
    view = child(graph, "bigquery/table:Table", "orders-dedup-view")
    assert view["tableId"] == "orders_dedup"
    assert "PARTITION BY _headwater_id" in view["view"]["query"]
    assert f"`{PROJECT}.headwater_gcp_orders.orders`" in view["view"]["query"]
    assert graph.outputs["bigquery_queries"]["orders"] == \
        f"SELECT * FROM `{PROJECT}.headwater_gcp_orders.orders_dedup` LIMIT 10"


def _with(config: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(config)
    out["headwater:pipelines"][0].update(changes)
    return out


def test_recursion_is_refused_at_plan_time(artifact):
    config = _with(example_config(),
                   source={"prefix": "raw/orders/", "bucket": "shared"},
                   deadletter={"bucket": "shared", "prefix": "raw/"})
    with pytest.raises(PlanError, match=r"dead-letter location gs://shared/raw/orders/ overlaps"):
        plan(config, artifact)


def test_a_region_mismatch_is_refused(artifact):
    config = _with(example_config(), overrides={"gcp": {"bucket": {"location": "us-east1"}}})
    with pytest.raises(PlanError, match="overrides.gcp.bucket.location is 'us-east1'.*share one"):
        plan(config, artifact)
    config = example_config()
    del config["gcp:region"]
    with pytest.raises(PlanError, match="needs a region"):
        plan(config, artifact)


def test_unknown_override_and_column_type_are_refused(artifact):
    config = _with(example_config(), overrides={"gcp": {"function": {"servce_config": {}}}})
    with pytest.raises(PlanError, match="servce_config.*Did you mean service_config"):
        plan(config, artifact)
    config = _with(example_config(), sink={"table": "orders", "columns": {"a": "varchar"}})
    with pytest.raises(pulumi.RunError, match="column 'a': unknown type 'varchar'"):
        plan(config, artifact)


def test_timeout_over_the_push_ack_deadline_is_refused(artifact):
    config = _with(example_config(), limits={"timeout_s": 900})
    with pytest.raises(PlanError, match="timeout_s=900 is over 600"):
        plan(config, artifact)


def test_function_settings_output_is_each_functions_environment(graph):
    """`headwater replay` on GCP runs with this output: it must be what the function gets."""
    out = graph.outputs["function_settings"]
    assert sorted(out) == ["orders", "signups"]
    for name, settings in out.items():
        fn = child(graph, "cloudfunctionsv2/function:Function", f"{name}-function")
        assert settings == fn["serviceConfig"]["environmentVariables"]
        assert settings["HEADWATER_PIPELINE"] == name


def test_status_outputs_name_each_pipelines_subscriptions_and_the_project(graph):
    """`headwater status` reads these subscriptions' depth in this project."""
    assert graph.outputs["project_id"] == PROJECT
    for name in ("orders", "signups"):
        push = child(graph, "pubsub/subscription:Subscription", f"{name}-push")
        dead = child(graph, "pubsub/subscription:Subscription", f"{name}-dead-letter-sub")
        assert push["topic"] == graph.outputs["topics"][name]
        # the subscription id (as Pulumi auto-names it), not the full resource name
        assert graph.outputs["subscriptions"][name].startswith(f"{name}-push-")
        assert graph.outputs["dead_letter_subscriptions"][name].startswith(
            f"{name}-dead-letter-sub-")
        assert dead["topic"] == graph.outputs["dead_letter_topics"][name]
