"""Replay on Azure: dead-letter files in the dead-letter container on Azurite (written by
the function, called through the real function_app), read and moved through
:class:`runtimes.azure.store.BlobStore`, records written through the runtime's own sink to
the processed-hub stand-in (azure_harness.StandInHub: Event Hubs has no emulator that runs
here) after the users table on Azurite was fixed for one of the two failed records."""

from __future__ import annotations

import pytest
from azure_harness import FunctionContext, hub_events, indexed_function
from e2e.azure.conftest import orders_stack  # noqa: F401

from runtimes.azure import clients, handler
from runtimes.azure.store import BlobStore
from runtimes.core.replay import replay

from .common import ndjson, orders

pytestmark = [pytest.mark.e2e]
FUNCTION = indexed_function()
KEY = "raw/orders/2024/05/01/replay.ndjson"


def test_replay_from_blob_into_the_hub_once_and_keeps_what_still_fails(orders_stack):  # noqa: F811
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
    handler._reset()  # replay runs in its own process: no warm lookup cache
    clients.set_producer(st.hub)
    engine = handler._runtime().engine
    store = BlobStore(clients.blob_service().get_container_client(st.deadletter))
    prefix = st.spec.deadletter.prefix

    dry = replay(store, prefix, engine, dry_run=True)
    assert (dry.files, dry.replayed, dry.written) == ([first], 2, 0)
    assert len(st.hub.events) == 3 and list(st.deadletters()) == [first]

    report = replay(store, prefix, engine)
    assert (report.replayed, report.written, report.failed_again) == (2, 1, 1)
    sent = {e["order_id"]: e for e in st.hub.events}
    assert sorted(sent) == ["1", "2", "3", "5"] and sent["2"]["country"] == "NL"
    assert len(st.hub.events) == 4
    dead = st.deadletters()
    moved = [n for n in dead if "/_replayed/" in n]
    assert len(moved) == 1 and dead[moved[0]] == entries  # marked: moved, unchanged
    (fresh,) = [n for n in dead if "/_replayed/" not in n]
    (again,) = dead[fresh]  # what still fails is kept, with its new error
    assert again["record"]["user_id"] == "u8" and again["step"] == "3:enrich"
    assert again["error_type"] == "LookupError" and again["message"]

    rerun = replay(store, prefix, engine)  # only the new entry; nothing sent twice
    assert (rerun.files, rerun.written, rerun.failed_again) == ([fresh], 0, 1)
    assert len(st.hub.events) == 4
