"""The policy rules (headwater/policies/): for every rule a stack that breaks it and one
that passes, asserting the message; the deliberately insecure example fails with the
expected messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from headwater.cli import app
from headwater.policies import RULES, evaluate
from headwater.program import Res

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ROOT = Path(__file__).resolve().parents[2]
ARN = "arn:aws:s3:::raw-1"
TLS = json.dumps({"Statement": [{
    "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": [ARN, f"{ARN}/*"],
    "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})
BLOCK = {"blockPublicAcls": True, "blockPublicPolicy": True, "ignorePublicAcls": True,
         "restrictPublicBuckets": True}
SSE = {"rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]}


def res(typ: str, logical: str, **props) -> Res:
    """A resource as the plan records it: ``props`` both its inputs and its outputs."""
    return Res(typ, logical, dict(props), outputs=dict(props),
               urn=f"urn:pulumi:t::p::{typ}::{logical}")


def found(resources: list[Res], rule: str) -> list[str]:
    return [f"{v.name}: {v.message} | {v.fix}" for v in evaluate(resources) if v.rule == rule]


def bucket(name: str = "raw", guards: bool = True, **extra) -> list[Res]:
    out = [res("aws:s3/bucket:Bucket", name, bucket=f"{name}-1", arn=ARN, **extra)]
    if guards:
        out += [res("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", f"{name}-pab",
                    bucket=f"{name}-1", **BLOCK),
                res("aws:s3/bucketServerSideEncryptionConfiguration:"
                    "BucketServerSideEncryptionConfiguration", f"{name}-sse",
                    bucket=f"{name}-1", **SSE),
                res("aws:s3/bucketPolicy:BucketPolicy", f"{name}-tls", bucket=f"{name}-1",
                    policy=TLS)]
    return out


def queues(visibility: int = 360, redrive: bool = True) -> list[Res]:
    dlq_arn = "arn:aws:sqs:eu-west-1:1:q-dlq"
    main = {"arn": "arn:aws:sqs:eu-west-1:1:q", "visibilityTimeoutSeconds": visibility,
            "sqsManagedSseEnabled": True}
    if redrive:
        main["redrivePolicy"] = json.dumps({"deadLetterTargetArn": dlq_arn,
                                            "maxReceiveCount": 5})
    return [res("aws:sqs/queue:Queue", "q", **main),
            res("aws:sqs/queue:Queue", "q-dlq", arn=dlq_arn, sqsManagedSseEnabled=True)]


def function(timeout: int = 60, log_group: bool = True, **env) -> list[Res]:
    fn = res("aws:lambda/function:Function", "fn", name="fn", timeout=timeout,
             arn="arn:aws:lambda:eu-west-1:1:function:fn", role="arn:aws:iam::1:role/fn-role",
             environment={"variables": env})
    mapping = res("aws:lambda/eventSourceMapping:EventSourceMapping", "trigger",
                  eventSourceArn="arn:aws:sqs:eu-west-1:1:q", functionName=fn.inputs["arn"])
    out = [fn, mapping]
    if log_group:
        out.append(res("aws:cloudwatch/logGroup:LogGroup", "logs", name="/aws/lambda/fn",
                       retentionInDays=30))
    return out


def secure_stack() -> list[Res]:
    return bucket() + queues() + function()


def test_every_rule_has_a_check_and_a_secure_stack_passes_them_all():
    assert all(rule.checks for rule in RULES)
    assert evaluate(secure_stack()) == []


# -- no-public-access -------------------------------------------------------------------


def test_a_bucket_without_a_full_public_access_block_is_public():
    partial = bucket()
    partial[1].outputs["restrictPublicBuckets"] = False
    (msg,) = found(partial, "no-public-access")
    assert msg.startswith("raw: has no public access block with all four settings on | add an "
                          "aws.s3.BucketPublicAccessBlock")
    assert found(bucket(), "no-public-access") == []


def test_a_bucket_policy_granting_everyone_and_a_public_acl_are_public():
    public = json.dumps({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"},
                                        "Action": "s3:GetObject", "Resource": f"{ARN}/x"}]})
    stack = bucket(acl="public-read") + [
        res("aws:s3/bucketPolicy:BucketPolicy", "open", bucket="raw-1", policy=public)]
    msgs = found(stack, "no-public-access")
    assert "raw: acl is 'public-read' | remove the public ACL" in msgs
    assert any(m.startswith("open: policy Statement[0] allows Principal '*' without a "
                            "condition") for m in msgs)


# -- encryption-at-rest, tls-only -------------------------------------------------------


def test_unencrypted_buckets_queues_and_streams_are_refused():
    stack = bucket()[:1] + [res("aws:sqs/queue:Queue", "plain", arn="a"),
                            res("aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream",
                                "stream", serverSideEncryption={"enabled": False})]
    msgs = found(stack, "encryption-at-rest")
    assert "raw: has no default encryption | add an " \
           "aws.s3.BucketServerSideEncryptionConfiguration for it (AES256 or aws:kms)" in msgs
    assert "plain: is not encrypted at rest | set sqs_managed_sse_enabled=True or " \
           "kms_master_key_id" in msgs
    assert any(m.startswith("stream: is not encrypted at rest") for m in msgs)
    assert found(bucket() + queues(), "encryption-at-rest") == []


def test_a_bucket_without_the_tls_guard_is_refused():
    (msg,) = found(bucket()[:3], "tls-only")
    assert msg.startswith("raw: accepts requests without TLS | add a bucket policy that denies")
    assert found(bucket(), "tls-only") == []


# -- iam-no-wildcards --------------------------------------------------------------------


def _role_policy(*statements) -> Res:
    return res("aws:iam/rolePolicy:RolePolicy", "rp", role="fn-role",
               policy=json.dumps({"Statement": list(statements)}))


def test_wildcard_actions_and_resources_are_refused_the_documented_children_allowed():
    bad = _role_policy({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})
    msgs = found([bad], "iam-no-wildcards")
    assert "rp: policy Statement[0]: Action 's3:*' has '*' | name the exact actions and " \
           "resource ARNs (only the S3 object-prefix and log-stream child wildcards are " \
           "allowed)" in msgs
    assert any("Resource '*' has '*'" in m for m in msgs)
    good = _role_policy(
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": f"{ARN}/raw/orders/*"},
        {"Effect": "Allow", "Action": ["logs:PutLogEvents"], "Resource":
         "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/fn:log-stream:*"})
    assert found([good] + bucket(), "iam-no-wildcards") == []  # TLS guard Deny included


# -- dead-letter -------------------------------------------------------------------------


def test_a_queue_without_redrive_that_is_no_dead_letter_queue_is_refused():
    msgs = found(queues(redrive=False), "dead-letter")
    assert "q: has no redrive policy and is no other queue's dead-letter queue | give it " \
           "redrive_policy={deadLetterTargetArn: <a DLQ's ARN>, maxReceiveCount: N}" in msgs
    assert len(msgs) == 2  # the would-be DLQ is no one's dead-letter queue either
    assert found(queues(), "dead-letter") == []


def test_an_asynchronous_s3_invocation_needs_a_dead_letter_destination():
    fn = function()[0]
    notify = res("aws:s3/bucketNotification:BucketNotification", "notify", bucket="raw-1",
                 lambdaFunctions=[{"lambdaFunctionArn": fn.inputs["arn"],
                                   "filterPrefix": "in/"}])
    (msg,) = found([fn, notify], "dead-letter")
    assert msg.startswith("fn: is invoked asynchronously by an S3 notification without a "
                          "dead-letter destination | set dead_letter_config.target_arn")
    fn.outputs["deadLetterConfig"] = {"targetArn": "arn:aws:sqs:eu-west-1:1:q-dlq"}
    assert found([fn, notify], "dead-letter") == []


# -- log-retention -----------------------------------------------------------------------


def test_log_groups_without_retention_and_functions_without_a_group_are_refused():
    stack = function(log_group=False) + [res("aws:cloudwatch/logGroup:LogGroup", "other",
                                             name="/other")]
    msgs = found(stack, "log-retention")
    assert "other: log group /other keeps logs forever | set retention_in_days (e.g. 30)" in msgs
    assert "fn: logs to /aws/lambda/fn, which the stack does not create, so Lambda creates " \
           "it without retention | create an aws.cloudwatch.LogGroup named /aws/lambda/fn " \
           "with retention_in_days" in msgs
    assert found(function(), "log-retention") == []


# -- no-plain-secrets --------------------------------------------------------------------


def test_literal_secrets_in_a_functions_environment_are_refused_references_allowed():
    bad = function(API_TOKEN="tok_live_1", DB_PASSWORD="hunter2",
                   HEADWATER_SECRETS="not a map")
    msgs = found(bad, "no-plain-secrets")
    assert "fn: environment variable API_TOKEN holds a literal value | keep the value in " \
           "Secrets Manager and pass its name or ARN (pipelines: secrets: {name: <secret " \
           "name or ARN>})" in msgs
    assert any(m.startswith("fn: environment variable DB_PASSWORD") for m in msgs)
    assert any(m.startswith("fn: environment variable HEADWATER_SECRETS") for m in msgs)
    good = function(HEADWATER_SECRETS=json.dumps({"email-key": "headwater/email-key"}),
                    HEADWATER_LOOKUP_KEYS=json.dumps({"users": "user_id"}),
                    API_KEY_ARN="arn:aws:secretsmanager:eu-west-1:1:secret:api-AbCdEf",
                    HEADWATER_STREAM="orders-stream")
    assert found(good, "no-plain-secrets") == []


# -- timeout-below-visibility ------------------------------------------------------------


def test_a_function_timeout_not_below_the_queues_visibility_timeout_is_refused():
    (msg,) = found(queues(visibility=60) + function(timeout=60), "timeout-below-visibility")
    assert msg == ("q: visibility timeout 60s is not above the timeout 60s of function 'fn', "
                   "so a message reappears while it is still being processed | raise "
                   "visibility_timeout_seconds to 360 (6 x the function timeout, AWS's "
                   "guidance) or lower the function timeout")
    assert found(queues(visibility=360) + function(timeout=60), "timeout-below-visibility") == []


# -- no-retrigger ------------------------------------------------------------------------


def _wired(stream_prefix: str, put_arn: str) -> list[Res]:
    notify = res("aws:s3/bucketNotification:BucketNotification", "notify", bucket="raw-1",
                 queues=[{"queueArn": "arn:aws:sqs:eu-west-1:1:q", "filterPrefix": "raw/"}])
    stream = res("aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream", "stream",
                 extendedS3Configuration={"bucketArn": ARN, "prefix": stream_prefix,
                                          "errorOutputPrefix": "errors/"})
    role = res("aws:iam/role:Role", "fn-role", name="fn-role",
               arn="arn:aws:iam::1:role/fn-role")
    put = _role_policy({"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": [put_arn]})
    return queues() + function() + [notify, stream, role, put]


def test_a_sink_or_dead_letter_under_the_source_prefix_is_refused():
    msgs = found(_wired("raw/curated/!{timestamp:yyyy}/", f"{ARN}/raw/failed/*"),
                 "no-retrigger")
    assert "stream: prefix s3://raw-1/raw/curated/ overlaps the source s3://raw-1/raw/ of " \
           "notification 'notify', so every delivery triggers it again | write the sink and " \
           "dead-letters to another bucket, or under a prefix that neither starts with the " \
           "source prefix nor is a start of it" in msgs
    assert any(m.startswith("rp: lets the function write s3://raw-1/raw/failed/, under the "
                            "source s3://raw-1/raw/ that triggers it") for m in msgs)
    assert found(_wired("curated/", f"{ARN}/deadletter/*"), "no-retrigger") == []


# -- the insecure example ----------------------------------------------------------------


def test_the_insecure_example_fails_with_the_expected_messages():
    result = CliRunner().invoke(app, ["plan", "--stack", "insecure", "--project-dir",
                                      str(ROOT / "examples" / "insecure"), "--json"])
    assert result.exit_code == 1
    got = {(v["rule"], v["name"], v["message"])
           for v in json.loads(result.stdout)["violations"]}
    assert ("no-public-access", "orders-public-read",
            "policy Statement[0] allows Principal '*' without a condition") in got
    assert ("no-public-access", "scratch",
            "has no public access block with all four settings on") in got
    assert ("iam-no-wildcards", "orders-admin", "policy Statement[0]: Action 's3:*' has '*'") in got
    assert ("iam-no-wildcards", "orders-admin", "policy Statement[0]: Resource '*' has '*'") in got
    assert ("encryption-at-rest", "scratch", "has no default encryption") in got
    assert ("tls-only", "scratch", "accepts requests without TLS") in got
    assert ("no-plain-secrets", "orders-function",
            "environment variable PAYMENTS_API_TOKEN holds a literal value") in got


# -- GCP rows ----------------------------------------------------------------------------

GCS = "gcp:storage/bucket:Bucket"
SUB = "gcp:pubsub/subscription:Subscription"


def test_gcp_buckets_must_prevent_public_access_and_nobody_is_granted_to_all_users():
    open_bucket = res(GCS, "raw", name="raw-1", uniformBucketLevelAccess=False)
    grant = res("gcp:storage/bucketIAMMember:BucketIAMMember", "public", bucket="raw-1",
                role="roles/storage.objectViewer", member="allUsers")
    msgs = found([open_bucket, grant], "no-public-access")
    assert "raw: does not enforce public access prevention | set " \
           "public_access_prevention='enforced'" in msgs
    assert "raw: allows object ACLs (uniform bucket-level access is off) | set " \
           "uniform_bucket_level_access=True" in msgs
    assert "public: grants roles/storage.objectViewer to allUsers | grant named principals " \
           "only" in msgs
    closed = res(GCS, "raw", name="raw-1", uniformBucketLevelAccess=True,
                 publicAccessPrevention="enforced")
    assert found([closed], "no-public-access") == []


def test_gcp_primitive_project_roles_are_refused():
    editor = res("gcp:projects/iAMMember:IAMMember", "fn-editor", project="p",
                 role="roles/editor", member="serviceAccount:fn@p.iam.gserviceaccount.com")
    (msg,) = found([editor], "iam-no-wildcards")
    assert msg.startswith("fn-editor: grants the primitive role roles/editor to "
                          "serviceAccount:fn@p.iam.gserviceaccount.com | grant a predefined "
                          "role scoped to the resource it needs")
    viewer = res("gcp:projects/iAMMember:IAMMember", "fn-lookups", project="p",
                 role="roles/datastore.viewer", member="serviceAccount:fn@p")
    assert found([viewer], "iam-no-wildcards") == []


def test_gcp_push_subscriptions_need_a_dead_letter_topic_that_is_read():
    push = res(SUB, "push", topic="projects/p/topics/in", pushConfig={"pushEndpoint": "https://f"})
    msgs = found([push], "dead-letter")
    assert msgs == ["push: pushes without a dead-letter policy, so a message that keeps "
                    "failing is retried until it expires | set dead_letter_policy="
                    "{dead_letter_topic: <a topic>, max_delivery_attempts: N}"]
    push.outputs["deadLetterPolicy"] = {"deadLetterTopic": "projects/p/topics/dl",
                                        "maxDeliveryAttempts": 5}
    (lost,) = found([push], "dead-letter")
    assert lost.startswith("push: dead-letters to projects/p/topics/dl, which no subscription "
                           "reads, so dead-lettered messages are lost")
    reader = res(SUB, "dl-sub", topic="projects/p/topics/dl")
    assert found([push, reader], "dead-letter") == []


def test_gcp_function_environment_holds_no_literal_secrets():
    fn = res("gcp:cloudfunctionsv2/function:Function", "fn", name="fn", serviceConfig={
        "environmentVariables": {"WEBHOOK_SECRET": "s3cr3t",
                                 "HEADWATER_SECRETS": json.dumps({"k": "projects/p/secrets/k"}),
                                 "DB_PASSWORD": "projects/p/secrets/db/versions/1"}})
    (msg,) = found([fn], "no-plain-secrets")
    assert msg.startswith("fn: environment variable WEBHOOK_SECRET holds a literal value | "
                          "keep the value in Secret Manager")


def test_gcp_log_buckets_must_set_a_retention():
    bucket = res("gcp:logging/projectBucketConfig:ProjectBucketConfig", "logs", project="p",
                 location="global", bucketId="pipeline-logs")
    (msg,) = found([bucket], "log-retention")
    assert msg == ("logs: does not set how long the log bucket keeps logs | set retention_days "
                   "(e.g. 30)")
    bucket.outputs["retentionDays"] = 30
    assert found([bucket], "log-retention") == []


def _pushed(timeout: int, deadline: int) -> list[Res]:
    uri = "https://headwater-gcp-orders-1-ew.a.run.app"
    fn = res("gcp:cloudfunctionsv2/function:Function", "fn", name="fn",
             serviceConfig={"timeoutSeconds": timeout, "uri": uri})
    push = res(SUB, "push", topic="projects/p/topics/in", ackDeadlineSeconds=deadline,
               pushConfig={"pushEndpoint": uri},
               deadLetterPolicy={"deadLetterTopic": "projects/p/topics/dl"})
    return [fn, push, res(SUB, "dl-sub", topic="projects/p/topics/dl")]


def test_gcp_a_push_ack_deadline_below_the_function_timeout_is_refused_equal_allowed():
    (msg,) = found(_pushed(timeout=120, deadline=60), "timeout-below-visibility")
    assert msg == ("push: ack deadline 60s is below the timeout 120s of function 'fn', so "
                   "Pub/Sub pushes the message again while the first request still runs | "
                   "raise ack_deadline_seconds to 120 (at most 600) or lower the function "
                   "timeout to the deadline")
    assert found(_pushed(timeout=60, deadline=60), "timeout-below-visibility") == []


def test_gcp_dead_letters_that_would_trigger_the_source_again_are_refused():
    loop = res(SUB, "push", topic="projects/p/topics/in",
               deadLetterPolicy={"deadLetterTopic": "projects/p/topics/in"})
    notify = res("gcp:storage/notification:Notification", "notify", bucket="raw-1",
                 topic="projects/p/topics/in", objectNamePrefix="raw/orders/")

    def fn(bucket: str, prefix: str) -> Res:
        return res("gcp:cloudfunctionsv2/function:Function", "fn", name="fn", serviceConfig={
            "environmentVariables": {"HEADWATER_DEADLETTER_BUCKET": bucket,
                                     "HEADWATER_DEADLETTER_PREFIX": prefix}})

    msgs = found([loop, notify, fn("raw-1", "raw/")], "no-retrigger")
    assert "push: dead-letters into projects/p/topics/in, the topic it reads, so a failing " \
           "message comes back forever | dead-letter to a topic of its own" in msgs
    assert "fn: writes dead-letters to gs://raw-1/raw/, under the prefix gs://raw-1/raw/orders/ " \
           "of notification 'notify', so every dead-letter triggers a pipeline again | write " \
           "dead-letters to another bucket, or under a prefix that neither starts with the " \
           "notification's prefix nor is a start of it" in msgs
    assert found([notify, fn("raw-1", "deadletter/"), fn("dl-1", "raw/")], "no-retrigger") == []
