# ruff: noqa: F811  (pytest fixtures imported from the e2e conftests)
"""``headwater replay --stack aws`` on moto: dead-letter files in S3 (written by the Lambda
handler) read and moved through the runtime's dead-letter store, records written through
its own Firehose sink into S3 after the lookup table was fixed. The command runs with the
deployed function's settings, given as the stack's outputs (``function_settings``)."""

from __future__ import annotations

import pytest
from e2e.aws.conftest import REGION, FakeContext, aws, orders_stack  # noqa: F401

from runtimes.aws import handler

from .common import ndjson, orders, replay_cli, replayed

pytestmark = [pytest.mark.e2e]
KEY = "raw/orders/2024/05/01/replay.ndjson"


def test_replay_from_s3_into_firehose_once(orders_stack, tmp_path):
    st = orders_stack
    recs = orders(4)
    recs[1]["user_id"] = "u9"  # not in the users table yet: dead-lettered by enrich
    st.put(KEY, ndjson(recs))
    msgs = st.receive()
    assert handler.handler(st.event(msgs), FakeContext(120_000))["batchItemFailures"] == []
    assert sorted(r["order_id"] for r in st.delivered()) == ["1", "3", "4"]
    ((first, entries),) = st.deadletters().items()
    assert [e["step"] for e in entries] == ["3:enrich"]

    st.ddb.put_item(TableName=st.users, Item={"user_id": {"S": "u9"}, "tier": {"S": "gold"},
                                              "country": {"S": "NL"}})
    handler._reset()  # replay runs in its own process: no warm lookup cache

    def replay(*args: str) -> dict:
        return replayed(replay_cli(tmp_path, "aws", st.env, *args, region=REGION))

    dry = replay("--dry-run")
    assert (dry["files"], dry["replayable"], dry["written"]) == ([first], 1, 0)
    assert len(st.delivered()) == 3 and list(st.deadletters()) == [first]

    report = replay()
    assert (report["replayable"], report["written"], report["failed_again"]) == (1, 1, 0)
    delivered = {r["order_id"]: r for r in st.delivered()}
    assert sorted(delivered) == ["1", "2", "3", "4"] and delivered["2"]["country"] == "NL"
    assert delivered["2"]["_headwater_id"][:20] == delivered["1"]["_headwater_id"][:20]
    (moved,) = st.deadletters()
    assert moved == first.replace("/orders/", "/orders/_replayed/", 1)
    assert st.s3.head_object(Bucket=st.deadletter, Key=moved)["ServerSideEncryption"] == "AES256"

    again = replay()
    assert (again["files"], again["written"]) == ([], 0)
    assert len(st.delivered()) == 4


def test_replay_refuses_a_stack_without_the_functions_settings(orders_stack, tmp_path):
    from typer.testing import CliRunner

    from headwater.cli import app

    st = orders_stack
    replay_cli(tmp_path, "aws", {}, "--dry-run", region=REGION)  # writes the project
    project = tmp_path / "project"

    def replay(outputs: str) -> str:
        (project / "outputs.json").write_text(outputs, encoding="utf-8")
        result = CliRunner().invoke(app, ["replay", "--stack", "aws", "--pipeline", "orders",
                                          "--project-dir", str(project), "--outputs",
                                          str(project / "outputs.json")])
        assert result.exit_code == 1
        return " ".join(result.output.split())

    assert "has no output function_settings" in replay('{"function_names": {}}')
    assert "run `pulumi up` with this one first" in replay("{}")
    assert "pipeline 'orders' is not deployed in stack 'aws' (deployed: signups)" in replay(
        '{"function_settings": {"signups": {}}}')
    assert "--show-secrets" in replay(
        '{"function_settings": {"orders": {"HEADWATER_STREAM": "[secret]"}}}')
    assert st.deadletters() == {}


def test_a_file_another_replay_holds_is_left_to_it_and_a_done_one_only_moved(orders_stack,
                                                                             tmp_path):
    """Each file is a claimed record in the function's DynamoDB idempotency table: a live
    claim (another replay at work) keeps this replay off the file; a record marked done
    (a replay that stopped between writing and moving the file) means move it only."""
    st = orders_stack
    recs = orders(3)
    recs[0]["user_id"] = "u9"
    st.put(KEY, ndjson(recs))
    assert handler.handler(st.event(st.receive()), FakeContext(120_000))[
        "batchItemFailures"] == []
    (first,) = st.deadletters()
    st.ddb.put_item(TableName=st.users, Item={"user_id": {"S": "u9"}, "tier": {"S": "gold"},
                                              "country": {"S": "NL"}})
    claims = handler._runtime().idempotency
    record = f"{st.deadletter}/{first}#replay"
    state, token = claims.claim(record, 600)
    assert state == "go"

    busy = replayed(replay_cli(tmp_path, "aws", st.env, region=REGION))
    assert (busy["files"], busy["written"]) == ([], 0)
    ((file, why),) = [(k["file"], k["reason"]) for k in busy["kept"]]
    assert file == first and why.startswith("being replayed by another run")
    assert list(st.deadletters()) == [first] and len(st.delivered()) == 2

    claims.complete(record, token, {"written": 1})  # that run wrote, then stopped
    done = replayed(replay_cli(tmp_path, "aws", st.env, region=REGION))
    assert (done["files"], done["written"], done["kept"]) == ([], 0, [])
    assert list(st.deadletters()) == [first.replace("/orders/", "/orders/_replayed/", 1)]
    assert len(st.delivered()) == 2  # moved, not written again


def test_notifications_in_the_sqs_dlq_go_back_to_the_queue_and_their_object_runs(
        orders_stack, tmp_path):
    """A poison object's notification ends in the DLQ after maxReceiveCount; once the
    cause is fixed, `replay --notifications` sends it back (body intact, DLQ emptied)
    and the function writes the object's records once."""
    st = orders_stack
    st.put(KEY, ndjson(orders(3)))
    (msg,) = [m for m in st.receive() if "s3:TestEvent" not in m["Body"]]
    dlq = st.sqs.get_queue_url(QueueName=f"{st.queue}-dlq")["QueueUrl"]
    st.sqs.send_message(QueueUrl=dlq, MessageBody=msg["Body"])  # as the redrive policy does
    st.sqs.delete_message(QueueUrl=st.queue_url, ReceiptHandle=msg["ReceiptHandle"])
    outputs = {"dlq_urls": {"orders": dlq}, "queue_urls": {"orders": st.queue_url}}

    dry = replayed(replay_cli(tmp_path, "aws", st.env, "--notifications", "--dry-run",
                              region=REGION, outputs=outputs))
    assert dry["notifications"] == {"from": dlq, "to": st.queue_url, "moved": 1}
    assert st.receive() == []

    done = replayed(replay_cli(tmp_path, "aws", st.env, "--notifications", region=REGION,
                               outputs=outputs))
    assert done["notifications"]["moved"] == 1
    assert st.sqs.receive_message(QueueUrl=dlq).get("Messages", []) == []
    (back,) = st.receive()
    assert back["Body"] == msg["Body"]
    handler._reset()
    assert handler.handler(st.event([back]), FakeContext(120_000))["batchItemFailures"] == []
    assert sorted(r["order_id"] for r in st.delivered()) == ["1", "2", "3"]

    local = replay_cli(tmp_path, "azure", {}, "--notifications")
    assert local.exit_code == 1 and "replay already runs" in " ".join(local.output.split())
