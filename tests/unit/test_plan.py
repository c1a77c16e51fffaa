"""``headwater plan``: the real program under its cloud's mocks, with no credentials and no
packaging; the resource tree, counts, and every violation of the SDK's schema, the naming
rules and the policy rules. Every example stack of every cloud plans with 0 violations."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from headwater.cli import app

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ROOT = Path(__file__).resolve().parents[2]
cli = CliRunner()
CLOUD_STACKS = sorted(
    p.name[len("Pulumi."):-len(".yaml")] for p in ROOT.glob("Pulumi.*.yaml")
    if yaml.safe_load(p.read_text())["config"].get("headwater:cloud") != "local")
# per cloud: resource types every example stack of that cloud has
EXPECTED_TYPES = {
    "aws": {"headwater:aws:Pipeline", "aws:s3/bucket:Bucket", "aws:sqs/queue:Queue",
            "aws:lambda/function:Function", "aws:lambda/eventSourceMapping:EventSourceMapping",
            "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream",
            "aws:glue/catalogTable:CatalogTable", "aws:dynamodb/table:Table",
            "aws:iam/role:Role", "aws:cloudwatch/logGroup:LogGroup"},
    "gcp": {"headwater:gcp:Pipeline", "gcp:storage/bucket:Bucket", "gcp:pubsub/topic:Topic",
            "gcp:pubsub/subscription:Subscription", "gcp:storage/notification:Notification",
            "gcp:cloudfunctionsv2/function:Function", "gcp:bigquery/dataset:Dataset",
            "gcp:bigquery/table:Table", "gcp:serviceaccount/account:Account"},
    "azure": {"headwater:azure:Pipeline", "azure-native:storage:StorageAccount",
              "azure-native:storage:BlobContainer", "azure-native:eventgrid:SystemTopic",
              "azure-native:eventgrid:SystemTopicEventSubscription",
              "azure-native:eventhub:EventHub", "azure-native:web:WebApp",
              "azure-native:kusto:EventHubDataConnection",
              "azure-native:authorization:RoleAssignment"},
}


def plan(*args: str):
    return cli.invoke(app, ["plan", *args])


def aws_project(folder: Path, **overrides) -> Path:
    """The example AWS stack (without the plugin step) beside a copy of the real program;
    ``overrides`` ({pipeline: overrides.aws mapping}) planted."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "__main__.py", folder / "__main__.py")
    shutil.copy(ROOT / "Pulumi.yaml", folder / "Pulumi.yaml")
    doc = yaml.safe_load((ROOT / "Pulumi.aws.yaml").read_text())
    for p in doc["config"]["headwater:pipelines"]:
        p["transforms"] = [s for s in p["transforms"] if s["use"] != "country_name"]
        if p["name"] in overrides:
            p["overrides"] = {"aws": overrides[p["name"]]}
    (folder / "Pulumi.t.yaml").write_text(yaml.safe_dump(doc))
    return folder


@pytest.mark.parametrize("stack", CLOUD_STACKS)
def test_every_example_stack_plans_with_zero_violations(stack, example_plugin):
    result = plan("--stack", stack, "--project-dir", str(ROOT))
    assert result.exit_code == 0, result.output
    assert "0 violations" in result.output
    cloud = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"][
        "headwater:cloud"]
    listed = plan("--stack", stack, "--project-dir", str(ROOT), "--json")
    counts = json.loads(listed.stdout)["counts"]
    assert EXPECTED_TYPES[cloud] <= set(counts), EXPECTED_TYPES[cloud] - set(counts)


def test_plan_prints_the_tree_with_key_properties_and_counts(tmp_path):
    result = plan("--stack", "t", "--project-dir", str(aws_project(tmp_path)))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "headwater:aws:Pipeline orders" in out
    assert 'name="headwater-t-orders"' in out and 'runtime="python3.12"' in out
    assert "resources per type" in out


def test_plan_json_is_a_tree_of_components_with_counts_and_no_violations(tmp_path):
    result = plan("--stack", "t", "--project-dir", str(aws_project(tmp_path)), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and doc["violations"] == []
    (stack,) = doc["resources"]
    pipelines = {c["name"]: c for c in stack["children"] if c["type"] == "headwater:aws:Pipeline"}
    assert set(pipelines) == {"orders", "signups"}
    function = next(c for c in pipelines["orders"]["children"]
                    if c["type"] == "aws:lambda/function:Function")
    assert function["properties"] == {"name": "headwater-t-orders", "runtime": "python3.12",
                                      "architectures": ["arm64"], "memorySize": 512,
                                      "timeout": 60}
    assert doc["counts"]["aws:sqs/queue:Queue"] == 4
    assert doc["counts"]["aws:lambda/function:Function"] == 2


def test_config_errors_are_the_same_message_as_validate(tmp_path):
    project = aws_project(tmp_path)
    doc = yaml.safe_load((project / "Pulumi.t.yaml").read_text())
    del doc["config"]["headwater:pipelines"][0]["sink"]["table"]
    (project / "Pulumi.t.yaml").write_text(yaml.safe_dump(doc))
    planned = plan("--stack", "t", "--project-dir", str(project))
    validated = cli.invoke(app, ["validate", "--stack", "t", "--project-dir", str(project)])
    assert planned.exit_code == validated.exit_code == 1
    assert "headwater:pipelines[0].sink.table" in planned.output
    assert planned.output == validated.output


def test_plugin_errors_are_the_same_message_as_validate(tmp_path):
    project = aws_project(tmp_path)
    doc = yaml.safe_load((project / "Pulumi.t.yaml").read_text())
    doc["config"]["headwater:pipelines"][1]["transforms"].append({"use": "country_nam"})
    (project / "Pulumi.t.yaml").write_text(yaml.safe_dump(doc))
    planned = plan("--stack", "t", "--project-dir", str(project))
    validated = cli.invoke(app, ["validate", "--stack", "t", "--project-dir", str(project)])
    assert planned.exit_code == validated.exit_code == 1
    assert "unknown transform 'country_nam'" in planned.output
    assert planned.output == validated.output


def test_the_programs_own_refusals_come_out_as_clear_errors(tmp_path, example_plugin):
    project = aws_project(tmp_path, orders={"function": {"timeot": 30}})
    result = plan("--stack", "t", "--project-dir", str(project))
    assert result.exit_code == 1
    assert "overrides.function.timeot is not an argument of FunctionArgs" in result.output
    assert "Did you mean timeout" in result.output
    local = plan("--stack", "local", "--project-dir", str(ROOT))
    assert local.exit_code == 1 and "headwater run --stack local" in local.output


def test_planted_errors_of_every_kind_are_each_reported_and_fail_the_plan(tmp_path):
    """The self-test: what mocks accept and a real deployment refuses, planted through the
    escape hatch (overrides) into the real program."""
    project = aws_project(tmp_path, orders={
        "function": {"runtime": "pyhton3.12",  # enum
                     "memory_size": "512",  # value type
                     "logging_config": {"log_format": None}},  # nested required key
        "stream": {"extended_s3_configuration": {"buffering_sizee": 64},  # nested key
                   "name": "orders stream"},  # Firehose name
        "bucket": {"acl": "private"},  # deprecated property
        "curated_bucket": {"bucket_prefix": "xn--orders-"},  # reserved S3 prefix
        "queue": {"name": "orders.queue"},  # SQS name characters
        "role": {"name": "r" * 65},  # IAM role length
        "glue_database": {"name": "Orders-DB"},  # Glue/Athena name
        "idempotency_table": {"name": "ab"},  # DynamoDB length
    })
    result = plan("--stack", "t", "--project-dir", str(project), "--json")
    assert result.exit_code == 1
    found = {(v["rule"], v["name"], v["message"]) for v in json.loads(result.stdout)["violations"]}

    def reported(rule: str, name: str, text: str) -> bool:
        return any(r == rule and n == name and text in m for r, n, m in found)

    assert reported("sdk-enum", "orders-function",
                    "runtime is 'pyhton3.12', not a value of the SDK's Runtime")
    assert reported("sdk-value-type", "orders-function",
                    "memorySize is str '512', but the SDK types it int")
    assert reported("sdk-required", "orders-function", "loggingConfig.logFormat is missing")
    assert reported("sdk-unknown-property", "orders-stream",
                    "extendedS3Configuration.buffering_sizee is not a property of "
                    "FirehoseDeliveryStreamExtendedS3ConfigurationArgs")
    assert reported("sdk-deprecated", "orders-raw", "acl is deprecated")
    assert reported("physical-name", "orders-stream", "name: Firehose stream name 'orders stream'")
    assert reported("physical-name", "orders-curated", "starts with 'xn--'")
    assert reported("physical-name", "orders-queue", "'orders.queue' breaks the character rule")
    assert reported("physical-name", "orders-role", "has 65 characters")
    assert reported("physical-name", "orders-glue-database", "'Orders-DB' breaks")
    assert reported("physical-name", "orders-idempotency", "'ab' has 2 characters")
    fixes = json.loads(result.stdout)["violations"]
    assert all(v["fix"] for v in fixes)
