# ruff: noqa: F811  (pytest fixtures imported from the e2e conftests)
"""``headwater replay --stack azure``: dead-letter files in the dead-letter container on
Azurite (written by the function, called through the real function_app), read and moved
through the runtime's dead-letter store (:class:`runtimes.azure.store.BlobStore`), records written through the runtime's own sink to
the processed-hub stand-in (azure_harness.StandInHub: Event Hubs has no emulator that runs
here) after the users table on Azurite was fixed for one of the two failed records."""

from __future__ import annotations

import pytest
from azure_harness import FunctionContext, hub_events, indexed_function
from e2e.azure.conftest import function_on_azurite, orders_stack  # noqa: F401

from runtimes.azure import handler

from .common import check_replay_of_two_lookup_failures, ndjson, orders, replay_cli, replayed

pytestmark = [pytest.mark.e2e]
FUNCTION = indexed_function()
KEY = "raw/orders/2024/05/01/replay.ndjson"


def test_replay_from_blob_into_the_hub_once_and_keeps_what_still_fails(orders_stack,
                                                                      tmp_path):
    st = orders_stack
    recs = orders(5)
    recs[1]["user_id"] = "u9"  # not in the users table yet: fixed before the replay
    recs[3]["user_id"] = "u8"  # never added: fails again
    blob = st.put(KEY, ndjson(recs))
    FUNCTION.get_user_function()(hub_events([st.notification(blob)]), FunctionContext())
    assert sorted(e["order_id"] for e in st.hub.events) == ["1", "3", "5"]
    ((first, entries),) = st.deadletters().items()
    assert [(e["step"], e["record"]["user_id"]) for e in entries] == [
        ("3:enrich", "u9"), ("3:enrich", "u8")]

    st.tables.get_table_client(st.users).create_entity(
        {"PartitionKey": "users", "RowKey": "u9", "user_id": "u9", "tier": "gold",
         "country": "NL"})
    handler._state.clear()  # replay runs in its own process: no warm lookup cache

    def replay(*args: str) -> dict:
        return replayed(replay_cli(tmp_path, "azure", st.env, *args))

    check_replay_of_two_lookup_failures(replay, st.deadletters, lambda: st.hub.events,
                                        first, entries)



def test_replay_runs_a_parked_notifications_blob_again(orders_stack, tmp_path):
    """A notification parked on its last attempt (the hub refused every send) is the only
    copy once the trigger's checkpoint moved on: replay runs its blob again, once."""
    st = orders_stack
    blob = st.put(KEY, ndjson(orders(3)))
    st.hub.fail_sends = 10**6
    last = FunctionContext(5, 5)  # the last retry: what fails is parked
    FUNCTION.get_user_function()(hub_events([st.notification(blob)]), last)
    assert st.hub.events == []
    ((parked, doc),) = st.parked().items()
    assert doc["error_type"] == "SinkUnavailable" and doc["blob"]["name"] == KEY

    def replay(*args: str) -> dict:
        return replayed(replay_cli(tmp_path, "azure", st.env, *args))

    dry = replay("--dry-run")
    assert (dry["files"], dry["blobs_rerun"], dry["written"]) == ([parked], 1, 0)
    st.hub.fail_sends = 0
    report = replay()
    assert (report["blobs_rerun"], report["written"], report["kept"]) == (1, 3, [])
    assert sorted(e["order_id"] for e in st.hub.events) == ["1", "2", "3"]
    moved = parked.replace("/notifications/orders/", "/notifications/orders/_replayed/", 1)
    assert list(st.parked()) == [moved]
    assert replay()["files"] == [] and len(st.hub.events) == 3


def test_replay_parks_a_notification_again_when_its_blob_still_fails(orders_stack,
                                                                   tmp_path):
    st = orders_stack
    blob = st.put(KEY, ndjson(orders(2)))
    st.hub.fail_sends = 10**6
    last = FunctionContext(5, 5)  # the last retry: what fails is parked
    FUNCTION.get_user_function()(hub_events([st.notification(blob)]), last)
    ((parked, _),) = st.parked().items()
    report = replayed(replay_cli(tmp_path, "azure", st.env))
    (kept,) = report["kept"]
    assert kept["file"] == parked and kept["reason"].startswith("parked again as ")
    fresh = kept["reason"].removeprefix("parked again as ")
    current = st.parked()
    assert fresh in current and current[fresh]["error_type"] == "SinkUnavailable"
    assert parked not in current  # moved under _replayed/, never run twice
    assert parked.replace("/orders/", "/orders/_replayed/", 1) in current
    assert st.hub.events == []


def test_a_file_another_replay_holds_in_table_storage_is_left_to_it(orders_stack, tmp_path):
    """The claim on a dead-letter file is a Table Storage entity of the function's claims
    table, as for blobs: while another replay holds it, this one leaves the file."""
    st = orders_stack
    recs = orders(2)
    recs[0]["user_id"] = "u9"
    blob = st.put(KEY, ndjson(recs))
    FUNCTION.get_user_function()(hub_events([st.notification(blob)]), FunctionContext())
    (first,) = st.deadletters()
    claims = handler._runtime().idempotency
    record = f"{st.deadletter}/{first}#replay"
    state, token = claims.claim(record, 600)
    assert state == "go"
    busy = replayed(replay_cli(tmp_path, "azure", st.env))
    assert busy["written"] == 0 and [k["file"] for k in busy["kept"]] == [first]
    claims.release(record, token)  # that run failed and let go: this one takes the file
    again = replayed(replay_cli(tmp_path, "azure", st.env))
    assert (again["files"], again["failed_again"]) == ([first], 1)  # u9 is still unknown
