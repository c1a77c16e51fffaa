# ruff: noqa: F811  (pytest fixtures imported from the e2e conftests)
"""``headwater replay --stack gcp``: dead-letter files in the dead-letter bucket on
gcp-storage-emulator (written by the Cloud Function), read and moved through the runtime's
dead-letter store (:class:`runtimes.gcp.store.GcsStore`), records written through the
runtime's own BigQuery sink (the real google-cloud-bigquery
client against the BigQuery stand-in, a stand-in at the REST boundary) after the users
collection in the Firestore emulator was fixed for one of the two failed records. The
command runs with the deployed function's settings, given as the stack's outputs."""

from __future__ import annotations

import orjson
import pytest
from e2e.gcp.conftest import (  # noqa: F401
    USERS,
    bigquery,
    orders_stack,
)

from runtimes.gcp import events, main

from .common import check_replay_of_two_lookup_failures, ndjson, orders, replay_cli, replayed

pytestmark = [pytest.mark.e2e]
KEY = "raw/orders/2024/05/01/replay.ndjson"


def test_replay_from_gcs_into_bigquery_once_and_keeps_what_still_fails(orders_stack,
                                                                      tmp_path):
    from google.cloud import firestore

    st = orders_stack
    recs = orders(5)
    recs[1]["user_id"] = "u9"  # not in the users collection yet: fixed before the replay
    recs[3]["user_id"] = "u8"  # never added: fails again
    blob = st.put(KEY, ndjson(recs))
    note = events.parse_request({"Content-Type": "application/json"},
                                orjson.dumps(st.push_body(blob)))
    main.handle_notification(note)
    assert sorted(r["order_id"] for r in st.bigquery.rows) == ["1", "3", "5"]
    ((first, entries),) = st.deadletters().items()
    assert [(e["step"], e["record"]["user_id"]) for e in entries] == [
        ("3:enrich", "u9"), ("3:enrich", "u8")]

    collection = next(iter(main._runtime().engine.ctx.lookup.collections.values()))
    firestore.Client(project=st.env["HEADWATER_PROJECT"]).collection(collection).document(
        "u9").set({**USERS[0], "user_id": "u9", "country": "NL"})
    main._reset()  # replay runs in its own process: no warm lookup cache

    def replay(*args: str) -> dict:
        return replayed(replay_cli(tmp_path, "gcp", st.env, *args))

    check_replay_of_two_lookup_failures(replay, st.deadletters, lambda: st.bigquery.accepted,
                                        first, entries)
