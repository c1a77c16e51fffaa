"""The AWS program under Pulumi mocks: resource graph, wiring and security properties of
the shipped two-pipeline example stack (Pulumi.aws.yaml)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter

import pytest
from test_aws_component_mocks import PIPELINE, Graph, example_config, fake_artifact, run_program

from components.aws.policy import wildcard_problems

STORE = "headwater:aws:ArtifactStore"
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PER_PIPELINE = {
    "aws:s3/bucket:Bucket": 2,  # raw + curated
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": 2,
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": 2,
    "aws:s3/bucketPolicy:BucketPolicy": 2,
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": 1,
    "aws:s3/bucketVersioning:BucketVersioning": 1,  # raw: objects are read by version
    "aws:s3/bucketNotification:BucketNotification": 1,
    "aws:sqs/queue:Queue": 2,
    "aws:sqs/queuePolicy:QueuePolicy": 1,
    "aws:lambda/function:Function": 1,
    "aws:s3/bucketObjectv2:BucketObjectv2": 1,  # the function's code, in the artifacts bucket
    "aws:cloudwatch/logGroup:LogGroup": 1,
    "aws:lambda/eventSourceMapping:EventSourceMapping": 1,
    "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream": 1,
    "aws:glue/catalogDatabase:CatalogDatabase": 1,
    "aws:glue/catalogTable:CatalogTable": 2,  # the table and its de-duplicating view
    "aws:iam/role:Role": 2,  # function + Firehose
    "aws:iam/rolePolicy:RolePolicy": 2,
    "aws:cloudwatch/metricAlarm:MetricAlarm": 5,
}


@pytest.fixture
def graph(tmp_path, monkeypatch) -> Graph:
    return run_program(example_config(), fake_artifact(tmp_path), monkeypatch)


def _queues(graph: Graph, pipeline: str):
    main = graph.one("aws:sqs/queue:Queue", f"{pipeline}-queue")
    dlq = graph.one("aws:sqs/queue:Queue", f"{pipeline}-dlq")
    return main, dlq


def test_graph_has_each_pipelines_children_under_its_component(graph):
    assert sorted(r.name for r in graph.of(PIPELINE)) == ["orders", "signups"]
    tables = {"orders": 2, "signups": 1}  # orders enriches from 'users'; both: idempotency
    for name in ("orders", "signups"):
        kinds = Counter(r.typ for r in graph.children(name))
        expected = dict(PER_PIPELINE, **{"aws:dynamodb/table:Table": tables[name]})
        assert kinds == expected, name
    # Nothing AWS floats at the stack root: every cloud resource belongs to a pipeline, to
    # the stack's one artifacts store (its bucket and the bucket's guards) or to the
    # stack's dashboard.
    store = Counter(r.typ for r in graph.children("artifacts", STORE))
    assert store == {"aws:s3/bucket:Bucket": 1, "aws:s3/bucketVersioning:BucketVersioning": 1,
                     "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": 1,
                     "aws:s3/bucketServerSideEncryptionConfiguration:"
                     "BucketServerSideEncryptionConfiguration": 1,
                     "aws:s3/bucketPolicy:BucketPolicy": 1,
                     "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": 1}
    assert all(r.parent.split("::")[-2].endswith((PIPELINE, STORE, "headwater:aws:Dashboard"))
               for r in graph.resources if r.typ.startswith("aws:"))


def test_every_policy_document_is_free_of_wildcards(graph):
    docs = []
    for r in graph.of("aws:iam/rolePolicy:RolePolicy") + graph.of("aws:s3/bucketPolicy:BucketPolicy") \
            + graph.of("aws:sqs/queuePolicy:QueuePolicy"):
        docs.append((r.name, r.inputs["policy"]))
    docs += [(r.name, r.inputs["assumeRolePolicy"]) for r in graph.of("aws:iam/role:Role")]
    assert len(docs) == 2 * (2 + 2 + 1 + 2) + 1  # + the artifacts bucket's TLS guard
    for name, doc in docs:
        assert wildcard_problems(doc) == [], name
        for stmt in json.loads(doc)["Statement"]:
            if stmt["Effect"] == "Allow":
                actions = stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]]
                assert all("*" not in a for a in actions), name


def test_function_role_names_exact_resources(graph):
    doc = json.loads(graph.one("aws:iam/rolePolicy:RolePolicy", "orders-role-policy").inputs["policy"])
    grants = {s["Sid"]: s for s in doc["Statement"]}
    raw = graph.one("aws:s3/bucket:Bucket", "orders-raw").inputs["bucketPrefix"]
    assert grants["ReadRawPrefix"]["Action"] == ["s3:GetObject"]
    assert grants["ReadRawPrefix"]["Resource"] == [f"arn:aws:s3:::{raw}20240501/raw/orders/*"]
    assert grants["WriteSink"]["Action"] == ["firehose:PutRecordBatch"]
    assert grants["LookupTables"]["Action"] == ["dynamodb:BatchGetItem"]
    assert grants["LookupTables"]["Resource"][0].endswith(":table/orders-lookup-users-abc1234")
    assert grants["WriteDeadLetter"]["Resource"][0].endswith("/deadletter/orders/*")
    assert "Secrets" not in grants  # orders names no secret

    signups = json.loads(graph.one("aws:iam/rolePolicy:RolePolicy",
                                   "signups-role-policy").inputs["policy"])
    secrets = [s for s in signups["Statement"] if s["Sid"] == "Secrets"]
    assert secrets[0]["Action"] == ["secretsmanager:GetSecretValue"]
    assert secrets[0]["Resource"] == [
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:headwater/email-key-??????"]


def test_queue_policy_lets_only_its_bucket_send(graph):
    doc = json.loads(graph.one("aws:sqs/queuePolicy:QueuePolicy",
                               "orders-queue-policy").inputs["policy"])
    (stmt,) = doc["Statement"]
    assert stmt["Principal"] == {"Service": "s3.amazonaws.com"}
    assert stmt["Action"] == ["sqs:SendMessage"]
    assert stmt["Condition"]["ArnEquals"]["aws:SourceArn"] == "arn:aws:s3:::orders-raw-20240501"


def test_event_source_mapping_reports_item_failures_with_bounded_concurrency(graph):
    for name in ("orders", "signups"):
        esm = graph.one("aws:lambda/eventSourceMapping:EventSourceMapping", f"{name}-trigger").inputs
        assert esm["functionResponseTypes"] == ["ReportBatchItemFailures"]
        assert esm["scalingConfig"] == {"maximumConcurrency": 10}
        assert esm["batchSize"] == 100 and esm["maximumBatchingWindowInSeconds"] == 5
        assert esm["eventSourceArn"].endswith(f":{name}-queue-abc1234")


def test_every_queue_has_a_redrive_policy_or_is_an_encrypted_long_lived_dlq(graph):
    queues = graph.of("aws:sqs/queue:Queue")
    dlq_arns = set()
    for r in queues:
        assert r.inputs["sqsManagedSseEnabled"] is True, r.name
        if "redrivePolicy" in r.inputs:
            redrive = json.loads(r.inputs["redrivePolicy"])
            assert redrive["maxReceiveCount"] == 3
            dlq_arns.add(redrive["deadLetterTargetArn"])
    dlqs = [r for r in queues if "redrivePolicy" not in r.inputs]
    assert len(dlqs) == 2 and len(dlq_arns) == 2
    for r in dlqs:
        assert f"arn:aws:sqs:eu-west-1:123456789012:{r.name}-abc1234" in dlq_arns
        assert r.inputs["messageRetentionSeconds"] == 14 * 24 * 3600


def test_visibility_timeout_is_six_times_the_function_timeout(graph):
    for name in ("orders", "signups"):
        fn = graph.one("aws:lambda/function:Function", f"{name}-function").inputs
        main, _ = _queues(graph, name)
        assert main.inputs["visibilityTimeoutSeconds"] >= 6 * fn["timeout"]


def test_notification_filter_is_the_source_prefix(graph):
    config = {p["name"]: p for p in example_config()["headwater:pipelines"]}
    for name in ("orders", "signups"):
        note = graph.one("aws:s3/bucketNotification:BucketNotification", f"{name}-notification")
        (queue,) = note.inputs["queues"]
        assert queue["filterPrefix"] == config[name]["source"]["prefix"]
        assert queue["events"] == ["s3:ObjectCreated:*"]
        assert queue["queueArn"].endswith(f":{name}-queue-abc1234")
        assert note.inputs["bucket"] == f"{name}-raw-20240501"


def test_buckets_are_private_encrypted_tls_only_and_raw_copies_expire(graph):
    for r in graph.of("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"):
        assert all(r.inputs[k] is True for k in ("blockPublicAcls", "blockPublicPolicy",
                                                  "ignorePublicAcls", "restrictPublicBuckets"))
    for r in graph.of("aws:s3/bucketServerSideEncryptionConfiguration:"
                      "BucketServerSideEncryptionConfiguration"):
        rule = r.inputs["rules"][0]["applyServerSideEncryptionByDefault"]
        assert rule == {"sseAlgorithm": "AES256"}
    for r in graph.of("aws:s3/bucketPolicy:BucketPolicy"):
        (stmt,) = json.loads(r.inputs["policy"])["Statement"]
        assert stmt["Effect"] == "Deny"
        assert stmt["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    life = graph.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
                     "orders-raw-retention").inputs["rules"][0]
    assert life["filter"] == {"prefix": "raw/orders/"} and life["expiration"] == {"days": 30}


def test_function_runs_the_artifact_with_the_handler_and_its_wiring(graph, tmp_path):
    fn = graph.one("aws:lambda/function:Function", "orders-function").inputs
    digest = hashlib.sha256((tmp_path / "function.zip").read_bytes()).digest()
    assert fn["sourceCodeHash"] == base64.b64encode(digest).decode()
    assert "code" not in fn  # never a direct upload: see the artifacts-bucket tests
    assert fn["handler"] == "runtimes.aws.handler.handler"
    assert fn["runtime"] == "python3.12" and fn["architectures"] == ["arm64"]
    assert fn["memorySize"] == 512 and fn["timeout"] == 60
    env = fn["environment"]["variables"]
    assert env["HEADWATER_PIPELINE"] == "orders"
    assert env["HEADWATER_STREAM"] == "orders-stream-abc1234"
    assert env["HEADWATER_IDEMPOTENCY_TABLE"] == "orders-idempotency-abc1234"
    assert json.loads(env["HEADWATER_LOOKUP_TABLES"]) == {"users": "orders-lookup-users-abc1234"}
    assert json.loads(env["HEADWATER_LOOKUP_KEYS"]) == {"users": "user_id"}
    assert env["HEADWATER_DEADLETTER_BUCKET"] == "orders-curated-20240501"
    assert env["HEADWATER_DEADLETTER_PREFIX"] == "deadletter/"
    signups = graph.one("aws:lambda/function:Function", "signups-function").inputs
    # A reference to the secret, never its value.
    assert json.loads(signups["environment"]["variables"]["HEADWATER_SECRETS"]) == {
        "email-key": "headwater/email-key"}
    logs = graph.one("aws:cloudwatch/logGroup:LogGroup", "orders-logs").inputs
    assert logs["name"] == f"/aws/lambda/{fn['name']}" and logs["retentionInDays"] == 30
    assert fn["loggingConfig"]["logGroup"] == logs["name"]


def test_idempotency_table_has_ttl(graph):
    table = graph.one("aws:dynamodb/table:Table", "orders-idempotency").inputs
    assert table["ttl"] == {"attributeName": "expires_at", "enabled": True}
    assert table["serverSideEncryption"] == {"enabled": True}


def test_firehose_converts_to_parquet_partitioned_by_day_through_the_glue_table(graph):
    stream = graph.one("aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream",
                       "orders-stream").inputs
    s3 = stream["extendedS3Configuration"]
    assert s3["prefix"] == "orders/dt=!{timestamp:yyyy-MM-dd}/"
    assert s3["errorOutputPrefix"].startswith("firehose-errors/orders/")
    assert s3["bufferingSize"] >= 64
    conv = s3["dataFormatConversionConfiguration"]
    assert conv["inputFormatConfiguration"] == {"deserializer": {"openXJsonSerDe": {}}}
    assert conv["outputFormatConfiguration"] == {"serializer": {"parquetSerDe": {}}}
    assert conv["schemaConfiguration"]["databaseName"] == "headwater_aws_orders"
    assert conv["schemaConfiguration"]["tableName"] == "orders"
    assert stream["serverSideEncryption"]["enabled"] is True

    table = graph.one("aws:glue/catalogTable:CatalogTable", "orders-glue-table").inputs
    columns = {c["name"]: c["type"] for c in table["storageDescriptor"]["columns"]}
    assert columns["value_cents"] == "bigint" and columns["ts"] == "timestamp"
    assert table["partitionKeys"] == [{"name": "dt", "type": "string"}]
    params = table["parameters"]
    assert params["projection.enabled"] == "true" and params["projection.dt.type"] == "date"
    assert params["storage.location.template"] == "s3://orders-curated-20240501/orders/dt=${dt}/"


def test_dedup_view_is_an_athena_view_of_one_row_per_headwater_id(graph):
    """Athena knows a Glue table as a view by its type, its presto_view parameter and the
    base64 JSON in ViewOriginalText (what `CREATE VIEW` writes); its SQL runs here on
    DuckDB, which shares the window syntax, over rows with a resent half batch."""
    import duckdb

    view = graph.one("aws:glue/catalogTable:CatalogTable", "orders-dedup-view").inputs
    table = graph.one("aws:glue/catalogTable:CatalogTable", "orders-glue-table").inputs
    assert view["name"] == "orders_dedup" and view["tableType"] == "VIRTUAL_VIEW"
    assert view["databaseName"] == table["databaseName"]
    assert view["parameters"] == {"presto_view": "true", "comment": "Presto View"}
    assert view["viewExpandedText"] == "/* Presto View */"
    text = view["viewOriginalText"]
    assert text.startswith("/* Presto View: ") and text.endswith(" */")
    doc = json.loads(base64.b64decode(text.removeprefix("/* Presto View: ").removesuffix(" */")))
    assert (doc["catalog"], doc["schema"]) == ("awsdatacatalog", "headwater_aws_orders")
    hive = [(c["name"], c["type"]) for c in table["storageDescriptor"]["columns"]]
    hive += [(k["name"], k["type"]) for k in table["partitionKeys"]]
    assert [(c["name"], c["type"]) for c in view["storageDescriptor"]["columns"]] == hive
    trino = {"string": "varchar", "bigint": "bigint", "timestamp": "timestamp"}
    assert [(c["name"], c["type"]) for c in doc["columns"]] == [(n, trino[t]) for n, t in hive]

    con = duckdb.connect()
    con.execute('CREATE SCHEMA "headwater_aws_orders"')
    cols = ", ".join(f'"{n}" VARCHAR' for n, _ in hive)
    con.execute(f'CREATE TABLE "headwater_aws_orders"."orders" ({cols})')
    rows = [{n: f"{n}-{i}" for n, _ in hive} | {"_headwater_id": f"id{i}"} for i in range(4)]
    rows += rows[2:]  # the half batch a killed function resent, with the same ids
    con.executemany(f'INSERT INTO "headwater_aws_orders"."orders" VALUES '
                    f'({", ".join("?" for _ in hive)})', [list(r.values()) for r in rows])
    got = con.execute(doc["originalSql"]).fetchall()
    assert [d[0] for d in con.description] == [n for n, _ in hive]
    assert sorted(got) == sorted({tuple(r.values()) for r in rows}) and len(got) == 4


def test_alarms_cover_errors_throttles_dlq_and_queue_age(graph):
    metrics = sorted(r.inputs.get("metricName", "(math)") for r in graph.children("orders")
                     if r.typ == "aws:cloudwatch/metricAlarm:MetricAlarm")
    assert metrics == ["(math)", "ApproximateAgeOfOldestMessage",
                       "ApproximateNumberOfMessagesVisible", "Errors", "Throttles"]
    dlq_alarm = graph.one("aws:cloudwatch/metricAlarm:MetricAlarm", "orders-dlq-visible").inputs
    assert dlq_alarm["dimensions"] == {"QueueName": "orders-dlq-abc1234"}
    assert dlq_alarm["threshold"] == 0 and dlq_alarm["comparisonOperator"] == "GreaterThanThreshold"


def test_stack_exports_names_urls_and_an_athena_query(graph):
    out = graph.outputs
    assert out["raw_buckets"] == {"orders": "orders-raw-20240501", "signups": "signups-raw-20240501"}
    assert out["function_names"]["orders"] == "headwater-aws-orders"
    assert out["queue_urls"]["signups"].endswith("/signups-queue-abc1234")
    assert out["athena_queries"]["orders"].startswith(
        'SELECT * FROM "headwater_aws_orders"."orders" WHERE dt = ')


def _aws_example_stacks():
    import yaml
    from test_aws_component_mocks import ROOT

    for path in sorted(ROOT.glob("Pulumi.*.yaml")):
        config = yaml.safe_load(path.read_text(encoding="utf-8")).get("config") or {}
        if config.get("headwater:cloud") == "aws":
            yield pytest.param(config, id=path.name)


@pytest.mark.parametrize("config", list(_aws_example_stacks()))
def test_every_functions_rendered_environment_is_accepted_by_the_handler(config, tmp_path,
                                                                          monkeypatch):
    """The environment each function gets, as the component renders it, parsed by the
    handler's own reader: a pipeline without lookup tables must not get ``[]``."""
    from runtimes.core.env import env_json

    graph = run_program(config, fake_artifact(tmp_path), monkeypatch)
    functions = graph.of("aws:lambda/function:Function")
    assert len(functions) == len(config["headwater:pipelines"])
    for fn in functions:
        env = fn.inputs["environment"]["variables"]
        for name in ("HEADWATER_LOOKUP_TABLES", "HEADWATER_LOOKUP_KEYS", "HEADWATER_SECRETS"):
            monkeypatch.setenv(name, env[name])
            assert isinstance(env_json(name), dict), (fn.name, name, env[name])
        monkeypatch.setenv("HEADWATER_LOOKUP_TABLES", env["HEADWATER_LOOKUP_TABLES"])
        tables = env_json("HEADWATER_LOOKUP_TABLES")
        pipeline = fn.name.removesuffix("-function")
        spec = next(p for p in config["headwater:pipelines"] if p["name"] == pipeline)
        uses = {s.get("with", {}).get("table") for s in spec.get("transforms", [])} - {None}
        assert set(tables) == uses, fn.name


def test_raw_bucket_is_versioned_and_old_versions_expire_with_the_raw_copies(graph):
    versioning = graph.one("aws:s3/bucketVersioning:BucketVersioning", "orders-raw-versioning")
    assert versioning.inputs["versioningConfiguration"] == {"status": "Enabled"}
    retention = graph.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
                          "orders-raw-retention")
    rule = retention.inputs["rules"][0]
    assert rule["expiration"] == {"days": 30}
    assert rule["noncurrentVersionExpiration"] == {"noncurrentDays": 30}


def test_glue_table_has_the_row_id_column_for_de_duplication(graph):
    table = graph.one("aws:glue/catalogTable:CatalogTable", "orders-glue-table")
    columns = {c["name"]: c["type"] for c in table.inputs["storageDescriptor"]["columns"]}
    assert columns["_headwater_id"] == "string"
    assert columns["value_cents"] == "bigint"


def test_firehose_trust_uses_the_documented_external_id_condition(graph):
    """Firehose assumes its role with the account id as sts:ExternalId (the Firehose
    developer guide's trust policy); the function's role pins aws:SourceAccount."""
    firehose = json.loads(graph.one("aws:iam/role:Role", "orders-firehose-role")
                          .inputs["assumeRolePolicy"])["Statement"][0]
    assert firehose["Principal"] == {"Service": "firehose.amazonaws.com"}
    assert firehose["Condition"] == {"StringEquals": {"sts:ExternalId": "123456789012"}}
    function = json.loads(graph.one("aws:iam/role:Role", "orders-role")
                          .inputs["assumeRolePolicy"])["Statement"][0]
    assert function["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}


def test_function_settings_output_is_each_functions_environment(graph):
    """`headwater replay` on AWS runs with this output: it must be what the Lambda gets."""
    out = graph.outputs["function_settings"]
    assert sorted(out) == ["orders", "signups"]
    for name, settings in out.items():
        fn = graph.one("aws:lambda/function:Function", f"{name}-function").inputs
        assert settings == fn["environment"]["variables"]
        assert settings["HEADWATER_PIPELINE"] == name
