"""Replay on AWS: dead-letter files in S3 (written by the Lambda handler on moto) read and
moved through :class:`runtimes.aws.store.S3Store`, records written through the runtime's
own Firehose sink into S3, after the lookup table was fixed."""

from __future__ import annotations

import pytest
from e2e.aws.conftest import FakeContext, aws, orders_stack  # noqa: F401

from runtimes.aws import clients, handler
from runtimes.aws.store import S3Store
from runtimes.core.replay import replay

from .common import ndjson, orders

pytestmark = [pytest.mark.e2e]
KEY = "raw/orders/2024/05/01/replay.ndjson"


def test_replay_from_s3_into_firehose_once(orders_stack):  # noqa: F811
    st = orders_stack
    recs = orders(4)
    recs[1]["user_id"] = "u9"  # not in the users table yet: dead-lettered by enrich
    st.put(KEY, ndjson(recs))
    msgs = st.receive()
    assert handler.handler(st.event(msgs), FakeContext(120_000))["batchItemFailures"] == []
    assert sorted(r["order_id"] for r in st.delivered()) == ["1", "3", "4"]
    (entries,) = st.deadletters().values()
    assert [e["step"] for e in entries] == ["3:enrich"]

    st.ddb.put_item(TableName=st.users, Item={"user_id": {"S": "u9"}, "tier": {"S": "gold"},
                                              "country": {"S": "NL"}})
    handler._reset()  # replay runs in its own process: no warm lookup cache
    engine = handler._runtime().engine
    store = S3Store(clients.client("s3"), st.deadletter)
    prefix = st.spec.deadletter.prefix

    dry = replay(store, prefix, engine, dry_run=True)
    assert (len(dry.files), dry.replayed, dry.written) == (1, 1, 0)

    report = replay(store, prefix, engine)
    assert (report.replayed, report.written, report.failed_again) == (1, 1, 0)
    delivered = {r["order_id"]: r for r in st.delivered()}
    assert sorted(delivered) == ["1", "2", "3", "4"] and delivered["2"]["country"] == "NL"
    names = list(store.list(prefix))
    assert names and all("/_replayed/" in n for n in names)

    again = replay(store, prefix, engine)
    assert (again.files, again.written) == ([], 0)
    assert len(st.delivered()) == 4
