"""The AWS program refuses what it cannot deploy safely, and honours the escape hatches
(existing buckets and tables, overrides, ResourceOptions), under Pulumi mocks."""

from __future__ import annotations

import copy
import json

import pulumi
import pytest
from test_aws_component_mocks import example_config, fake_artifact, run, run_program

from components.aws import deploy_stack
from components.aws.policy import wildcard_problems
from headwater.spec import parse_stack

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
KEY = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def config_with(**pipeline_changes) -> dict:
    """The example stack with ``pipeline_changes`` ({pipeline: {field: value}}) applied."""
    config = copy.deepcopy(example_config())
    for p in config["headwater:pipelines"]:
        p.update(pipeline_changes.get(p["name"], {}))
    return config


@pytest.fixture
def artifact(tmp_path):
    return fake_artifact(tmp_path)


def test_dead_letter_under_the_source_prefix_is_refused(artifact, monkeypatch):
    config = config_with(orders={
        "source": {"prefix": "raw/orders/", "bucket": "lake"},
        "deadletter": {"bucket": "lake", "prefix": "raw/orders/failed/"}})
    with pytest.raises(pulumi.RunError) as err:
        run_program(config, artifact, monkeypatch)
    msg = str(err.value)
    assert "pipeline 'orders'" in msg and "dead-letter" in msg
    assert "s3://lake/raw/orders/failed/orders/" in msg and "trigger the pipeline again" in msg


def test_sink_into_the_source_bucket_under_its_prefix_is_refused(artifact, monkeypatch):
    # Firehose writes <table>/dt=.../: with source prefix "orders" that loops.
    config = config_with(orders={"source": {"prefix": "orders", "bucket": "lake"},
                                 "sink": {**example_config()["headwater:pipelines"][0]["sink"],
                                          "existing": "lake"}})
    with pytest.raises(pulumi.RunError, match=r"its sink location s3://lake/orders/ overlaps"):
        run_program(config, artifact, monkeypatch)


def test_outputs_in_the_source_bucket_outside_its_prefix_are_accepted(artifact, monkeypatch):
    sink = {**example_config()["headwater:pipelines"][0]["sink"], "existing": "lake"}
    config = config_with(orders={"source": {"prefix": "raw/orders/", "bucket": "lake"},
                                 "sink": sink})
    graph = run_program(config, artifact, monkeypatch)
    stream = graph.one("aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream", "orders-stream")
    assert stream.inputs["extendedS3Configuration"]["bucketArn"] == "arn:aws:s3:::lake"


def test_overlapping_prefixes_in_one_bucket_are_refused(artifact, monkeypatch):
    config = config_with(orders={"source": {"prefix": "raw/", "bucket": "lake"}},
                         signups={"source": {"prefix": "raw/signups/", "bucket": "lake",
                                             "format": "csv"}})
    with pytest.raises(pulumi.RunError) as err:
        run_program(config, artifact, monkeypatch)
    assert "pipelines 'orders'" in str(err.value) and "'signups'" in str(err.value)
    assert "one object would trigger both" in str(err.value)


def test_pipelines_sharing_an_existing_bucket_share_one_notification(artifact, monkeypatch):
    """With ``notifications: s3`` on an existing bucket (headwater then owns its whole
    notification configuration), the pipelines share one configuration."""
    config = config_with(orders={"source": {"prefix": "in/", "suffix": ".json", "bucket": "lake",
                                            "notifications": "s3"}},
                         signups={"source": {"prefix": "in/", "suffix": ".csv", "bucket": "lake",
                                             "format": "csv", "notifications": "s3"}})
    graph = run_program(config, artifact, monkeypatch)
    (note,) = graph.of("aws:s3/bucketNotification:BucketNotification")
    assert note.inputs["bucket"] == "lake"
    assert note.parent.endswith("headwater:aws:BucketTrigger::trigger-lake")
    filters = sorted((q["id"], q["filterPrefix"], q["filterSuffix"]) for q in note.inputs["queues"])
    assert filters == [("orders", "in/", ".json"), ("signups", "in/", ".csv")]
    # The existing bucket is read, not created, and its own settings are left alone.
    raw = graph.one("aws:s3/bucket:Bucket", "orders-raw")
    assert raw.read
    assert not [r for r in graph.of("aws:s3/bucketLifecycleConfiguration:"
                                     "BucketLifecycleConfiguration")
                if r.name != "artifacts-old-versions"]  # only the artifacts bucket's
    policy = json.loads(graph.one("aws:sqs/queuePolicy:QueuePolicy",
                                  "orders-queue-policy").inputs["policy"])
    assert policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"] == "arn:aws:s3:::lake"


def test_sink_without_columns_is_refused_with_the_reason(artifact, monkeypatch):
    config = config_with(signups={"sink": {"table": "signups"}})
    with pytest.raises(pulumi.RunError, match=r"sink.columns is empty.*Parquet"):
        run_program(config, artifact, monkeypatch)


def test_overrides_are_merged_into_the_childs_arguments(artifact, monkeypatch):
    config = config_with(orders={"overrides": {"aws": {
        "function": {"memory_size": 2048, "environment": {"variables": {"EXTRA": "1"}}},
        "queue": {"message_retention_seconds": 86400},
        "glue_table": {"description": "orders, curated"}}}})
    graph = run_program(config, artifact, monkeypatch)
    fn = graph.one("aws:lambda/function:Function", "orders-function").inputs
    assert fn["memorySize"] == 2048 and fn["timeout"] == 60
    variables = fn["environment"]["variables"]
    assert variables["EXTRA"] == "1" and variables["HEADWATER_PIPELINE"] == "orders"
    queue = graph.one("aws:sqs/queue:Queue", "orders-queue").inputs
    assert queue["messageRetentionSeconds"] == 86400 and "redrivePolicy" in queue
    table = graph.one("aws:glue/catalogTable:CatalogTable", "orders-glue-table").inputs
    assert table["description"] == "orders, curated"
    other = graph.one("aws:lambda/function:Function", "signups-function").inputs
    assert other["memorySize"] == 512


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"function": {"memory": 2048}},
     r"overrides.function.memory is not an argument of FunctionArgs. Did you mean memory_size"),
    ({"fucntion": {"timeout": 30}}, r"overrides name no child 'fucntion'. Did you mean function"),
    ({"queue": {"visibility_timeout_seconds": 60}}, r"below 6 x the function timeout"),
])
def test_bad_overrides_are_refused_by_name(artifact, monkeypatch, overrides, expected):
    config = config_with(orders={"overrides": {"aws": overrides}})
    with pytest.raises(pulumi.RunError, match=expected):
        run_program(config, artifact, monkeypatch)


def test_a_cloud_without_components_is_one_clear_error(artifact, monkeypatch):
    """Every cloud the spec knows is built; a registry without one (as while a cloud is
    being added) answers with one sentence naming it and the built ones."""
    import components

    monkeypatch.setattr(components, "CLOUDS", {"aws": "components.aws"})
    config = {**example_config(), "headwater:cloud": "azure"}
    with pytest.raises(pulumi.RunError) as err:
        run_program(config, artifact, monkeypatch)
    assert str(err.value).count("\n") == 0 and "'azure'" in str(err.value)
    assert "built clouds: aws" in str(err.value)


def test_a_local_stack_is_refused_by_the_program_with_the_command_to_run(artifact, monkeypatch):
    config = {**example_config(), "headwater:cloud": "local"}
    with pytest.raises(pulumi.RunError, match="headwater run --stack"):
        run_program(config, artifact, monkeypatch)


def test_existing_lookup_table_is_read_not_created(artifact, monkeypatch):
    config = config_with(orders={"lookups": {"users": "prod-users"}})
    graph = run_program(config, artifact, monkeypatch)
    assert graph.one("aws:dynamodb/table:Table", "orders-lookup-users").read
    fn = graph.one("aws:lambda/function:Function", "orders-function").inputs
    assert json.loads(fn["environment"]["variables"]["HEADWATER_LOOKUP_TABLES"]) == {
        "users": "prod-users"}
    policy = json.loads(graph.one("aws:iam/rolePolicy:RolePolicy",
                                  "orders-role-policy").inputs["policy"])
    lookups = [s for s in policy["Statement"] if s["Sid"] == "LookupTables"][0]
    assert lookups["Resource"] == ["arn:aws:dynamodb:eu-west-1:123456789012:table/prod-users"]


def test_kms_key_encrypts_buckets_and_is_granted_exactly(artifact, monkeypatch):
    graph = run_program({**example_config(), "headwater:kms_key": KEY}, artifact, monkeypatch)
    for r in graph.of("aws:s3/bucketServerSideEncryptionConfiguration:"
                      "BucketServerSideEncryptionConfiguration"):
        assert r.inputs["rules"][0]["applyServerSideEncryptionByDefault"] == {
            "sseAlgorithm": "aws:kms", "kmsMasterKeyId": KEY}
    policy = json.loads(graph.one("aws:iam/rolePolicy:RolePolicy",
                                  "orders-role-policy").inputs["policy"])
    assert [s["Resource"] for s in policy["Statement"] if s["Sid"] == "BucketKey"] == [[KEY]]
    fn = graph.one("aws:lambda/function:Function", "orders-function").inputs
    assert fn["environment"]["variables"]["HEADWATER_DEADLETTER_KMS_KEY"] == KEY


def test_kms_key_that_is_not_an_arn_is_refused(artifact, monkeypatch):
    with pytest.raises(pulumi.RunError, match="must be a KMS key ARN"):
        run_program({**example_config(), "headwater:kms_key": "alias/data"}, artifact, monkeypatch)


def test_alarm_email_adds_a_topic_the_alarms_notify(artifact, monkeypatch):
    graph = run_program({**example_config(), "headwater:alarm_email": "ops@example.com"},
                        artifact, monkeypatch)
    (sub,) = graph.of("aws:sns/topicSubscription:TopicSubscription")
    assert sub.inputs["protocol"] == "email" and sub.inputs["endpoint"] == "ops@example.com"
    for alarm in graph.of("aws:cloudwatch/metricAlarm:MetricAlarm"):
        assert alarm.inputs["alarmActions"] == [sub.inputs["topic"]]


def test_resource_options_reach_every_child(artifact):
    stack = parse_stack(example_config())
    graph = run(lambda: deploy_stack(stack, artifact_for=lambda spec: str(artifact),
                                     opts=pulumi.ResourceOptions(protect=True), export=False))
    created = [r for r in graph.resources if r.typ.startswith("aws:") and not r.read]
    assert created and all(r.protect for r in created)
    assert graph.outputs == {}


@pytest.mark.parametrize(("doc", "ok"), [
    ({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/raw/*"}, True),
    ({"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/raw/x"}, False),
    ({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}, False),
    ({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}, False),
    ({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::*/raw/x"}, False),
    ({"Effect": "Allow", "Action": "logs:PutLogEvents", "Resource":
      "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/f:log-stream:*"}, True),
    ({"Effect": "Allow", "Action": "logs:PutLogEvents", "Resource":
      "arn:aws:logs:eu-west-1:123456789012:log-group:*"}, False),
    ({"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*",
      "Condition": {"Bool": {"aws:SecureTransport": "false"}}}, True),
    ({"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"}, False),
])
def test_wildcard_rule(doc, ok):
    problems = wildcard_problems({"Version": "2012-10-17", "Statement": [doc]})
    assert (problems == []) is ok, problems


def test_default_artifacts_come_from_the_packaging_api(artifact, monkeypatch, tmp_path):
    """``deploy_stack`` without ``artifact_for`` asks the packaging API for each pipeline's
    artifact in ``dist/<stack>/`` and deploys the file it names (the build itself is
    tested with packaging)."""
    import types

    import headwater.packaging as packaging

    calls = []

    def build(stack, spec, out_dir, **kwargs):
        calls.append((stack.cloud, spec.name, str(out_dir)))
        return types.SimpleNamespace(path=artifact, sha256="ignored")

    monkeypatch.setattr(packaging, "build_pipeline_artifact", build)
    stack = parse_stack(example_config())
    graph = run(lambda: deploy_stack(stack, export=False))
    assert calls == [("aws", "orders", "dist/aws"), ("aws", "signups", "dist/aws")]
    assert len(graph.of("aws:lambda/function:Function")) == 2

    def broken(stack, spec, out_dir, **kwargs):
        raise packaging.PackagingError("no wheel of lxml for manylinux2014_aarch64")

    monkeypatch.setattr(packaging, "build_pipeline_artifact", broken)
    with pytest.raises(pulumi.RunError, match=r"pipeline 'orders': cannot package .* lxml"):
        run(lambda: deploy_stack(stack, export=False))


def _chained(signups_deadletter: dict | None) -> dict:
    """orders: landing/in/orders/ -> lake/orders/; signups reads lake/orders/ (orders'
    Firehose output) and, with ``signups_deadletter``, dead-letters back into landing."""
    pipelines = example_config()["headwater:pipelines"]
    changes = {
        "orders": {"source": {"bucket": "landing", "prefix": "in/orders/"},
                   "sink": {**pipelines[0]["sink"], "existing": "lake"}},
        "signups": {"source": {"bucket": "lake", "prefix": "orders/", "format": "parquet"}},
    }
    if signups_deadletter:
        changes["signups"]["deadletter"] = signups_deadletter
    return config_with(**changes)


def test_pipelines_feeding_each_other_in_a_ring_are_refused(artifact, monkeypatch):
    config = _chained({"bucket": "landing", "prefix": "in/orders/"})
    with pytest.raises(pulumi.RunError) as err:
        run_program(config, artifact, monkeypatch)
    msg = str(err.value)
    assert "trigger each other in a ring" in msg
    assert "'orders' writes its sink to s3://lake/orders/" in msg
    assert "'signups' writes its dead-letter to s3://landing/in/orders/signups/" in msg


def test_a_pipeline_reading_another_ones_output_is_a_chain_and_accepted(artifact, monkeypatch):
    graph = run_program(_chained(None), artifact, monkeypatch)
    patterns = {r.name: json.loads(r.inputs["eventPattern"])
                for r in graph.of("aws:cloudwatch/eventRule:EventRule")}
    assert patterns["signups-objects"]["detail"] == {
        "bucket": {"name": ["lake"]}, "object": {"key": [{"prefix": "orders/"}]}}
    assert patterns["orders-objects"]["detail"] == {
        "bucket": {"name": ["landing"]}, "object": {"key": [{"prefix": "in/orders/"}]}}


def test_existing_bucket_gets_an_eventbridge_rule_and_keeps_its_notification_configuration(
        artifact, monkeypatch):
    """The default for an existing bucket: no BucketNotification (which would replace what
    other systems configured there), an EventBridge rule on Object Created under the prefix
    and suffix into the queue, undeliverable events to the DLQ."""
    config = config_with(orders={"source": {"prefix": "in/raw/", "suffix": ".json.gz",
                                            "bucket": "lake"}})
    graph = run_program(config, artifact, monkeypatch)
    assert not [n for n in graph.of("aws:s3/bucketNotification:BucketNotification")
                if n.inputs.get("bucket") == "lake"]
    rule = graph.one("aws:cloudwatch/eventRule:EventRule", "orders-objects")
    assert json.loads(rule.inputs["eventPattern"]) == {
        "source": ["aws.s3"], "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": ["lake"]},
                   "object": {"key": [{"wildcard": "in/raw/*.json.gz"}]}}}
    target = graph.one("aws:cloudwatch/eventTarget:EventTarget", "orders-objects-target")
    queue = graph.one("aws:sqs/queue:Queue", "orders-queue")
    dlq = graph.one("aws:sqs/queue:Queue", "orders-dlq")
    assert target.inputs["arn"].endswith(":orders-queue-abc1234")
    assert target.inputs["deadLetterConfig"]["arn"].endswith(":orders-dlq-abc1234")
    assert queue and dlq
    for name in ("orders-queue-policy", "orders-dlq-policy"):
        stmt = json.loads(graph.one("aws:sqs/queuePolicy:QueuePolicy", name)
                          .inputs["policy"])["Statement"][0]
        assert stmt["Principal"] == {"Service": "events.amazonaws.com"}
        assert stmt["Condition"]["ArnEquals"]["aws:SourceArn"] == (
            "arn:aws:events:eu-west-1:123456789012:rule/orders-objects-abc1234")


def test_created_bucket_with_eventbridge_switches_eventbridge_delivery_on(artifact, monkeypatch):
    config = config_with(orders={"source": {"prefix": "raw/orders/",
                                            "notifications": "eventbridge"}})
    graph = run_program(config, artifact, monkeypatch)
    note = graph.one("aws:s3/bucketNotification:BucketNotification", "orders-notification")
    assert note.inputs["eventbridge"] is True and not note.inputs.get("queues")


def test_event_pattern_escapes_wildcard_characters_of_the_prefix_and_suffix():
    from components.aws.pipeline import event_pattern

    key = event_pattern("b", "in/a*b\\c/", ".x*")["detail"]["object"]["key"]
    assert key == [{"wildcard": "in/a\\*b\\\\c/*.x\\*"}]
    assert event_pattern("b", "in/")["detail"]["object"]["key"] == [{"prefix": "in/"}]


def test_prefix_with_an_iam_wildcard_character_is_refused(artifact, monkeypatch):
    config = config_with(orders={"source": {"prefix": "in/*raw/"}})
    with pytest.raises(pulumi.RunError, match=r"source.prefix 'in/\*raw/' contains"):
        run_program(config, artifact, monkeypatch)


def test_python_outside_lambdas_runtimes_is_refused_listing_the_supported_ones(artifact,
                                                                              monkeypatch):
    from components.aws.checks import lambda_pythons

    config = dict(config_with(), **{"headwater:python": "3.19"})
    with pytest.raises(pulumi.RunError, match=r"headwater:python '3.19' is not a Lambda Python "
                                              r"runtime.*supported: 3\.11, 3\.12"):
        run_program(config, artifact, monkeypatch)
    assert "3.12" in lambda_pythons() and "3.9" not in lambda_pythons()


@pytest.mark.parametrize("name", ["xn--orders", "sthree-orders", "amzn-s3-demo-orders"])
def test_pipeline_names_that_give_bucket_names_s3_refuses_are_refused(artifact, monkeypatch,
                                                                      name):
    config = config_with(orders={"name": name})
    with pytest.raises(pulumi.RunError, match=f"the name starts with '{name.split('-')[0]}"):
        run_program(config, artifact, monkeypatch)


@pytest.mark.parametrize("table", ["my users", "users/eu"])
def test_lookup_table_names_dynamodb_refuses_are_refused(artifact, monkeypatch, table):
    steps = example_config()["headwater:pipelines"][0]["transforms"]
    steps = [dict(s, **({"with": {**s["with"], "table": table}} if s["use"] == "enrich" else {}))
             for s in steps]
    with pytest.raises(pulumi.RunError, match=f"lookup table '{table}' cannot name a DynamoDB"):
        run_program(config_with(orders={"transforms": steps}), artifact, monkeypatch)


def test_pipelines_whose_glue_databases_collide_are_refused(artifact, monkeypatch):
    config = config_with(orders={"name": "web-orders"}, signups={"name": "web_orders"})
    with pytest.raises(pulumi.RunError, match=r"'web-orders' and 'web_orders' would share the "
                                              r"Glue database 'headwater_aws_web_orders'"):
        run_program(config, artifact, monkeypatch)


def test_function_names_carry_the_project_and_keep_look_alike_stacks_apart():
    from components.aws.checks import function_name

    assert function_name("shop", "prod", "orders") == "shop-prod-orders"
    dotted, dashed = function_name("shop", "prod.eu", "orders"), function_name("shop", "prod-eu", "orders")
    assert dotted != dashed and dashed == "shop-prod-eu-orders"
    assert function_name("a", "prod", "orders") != function_name("b", "prod", "orders")
    long = function_name("p" * 40, "s" * 20, "orders")
    assert len(long) <= 64 and long != function_name("p" * 40, "s" * 21, "orders")
