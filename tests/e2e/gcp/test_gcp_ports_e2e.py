"""The enrichment port on the Firestore emulator: lookup rows written with the real
google-cloud-firestore client, read back by :class:`runtimes.gcp.ports.FirestoreLookup`
in batched ``get_all`` calls, and a warm instance's cache (``TtlCache``) serving the next
batch with no call."""

from __future__ import annotations

from typing import Any

import pytest

from runtimes.core.cache import TtlCache
from runtimes.gcp.ports import FirestoreLookup

pytestmark = pytest.mark.e2e


class _Counting:
    """The real client, with every ``get_all`` call and the documents it asked for kept."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.get_all_calls: list[list[str]] = []

    def collection(self, name: str) -> Any:
        return self.client.collection(name)

    def get_all(self, refs: Any) -> Any:
        refs = list(refs)
        self.get_all_calls.append([r.id for r in refs])
        return self.client.get_all(refs)


class _Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_lookups_are_one_batched_get_all_then_served_from_the_cache(
        firestore_emulator, monkeypatch, tmp_path):
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore_emulator)
    from google.cloud import firestore

    fs = firestore.Client(project="test-proj")
    collection = "users-" + tmp_path.name.lower().replace("_", "-")[-20:]
    batch = fs.batch()
    for n in range(1, 6):
        batch.set(fs.collection(collection).document(f"u{n}"), {"user_id": f"u{n}", "tier": n})
    batch.commit()

    client, clock = _Counting(fs), _Clock()
    lookup = FirestoreLookup(client, {"users": collection},
                             cache=TtlCache(ttl_s=300, clock=clock))
    keys = ["u1", "u2", "u3", "u2", "nobody", "u5"]
    rows = lookup("users", keys)
    assert client.get_all_calls == [["u1", "u2", "u3", "nobody", "u5"]]  # one call, no repeats
    assert {k: r["tier"] for k, r in rows.items()} == {"u1": 1, "u2": 2, "u3": 3, "u5": 5}

    again = lookup("users", ["u5", "u1", "nobody", "u3"])  # the next batch, hits and a miss
    assert len(client.get_all_calls) == 1
    assert {k: r["tier"] for k, r in again.items()} == {"u5": 5, "u1": 1, "u3": 3}

    more = lookup("users", ["u1", "u4"])  # only what the cache lacks is asked for
    assert client.get_all_calls[1:] == [["u4"]] and more["u4"]["tier"] == 4

    clock.now += 301  # entries expire: the store is asked again
    lookup("users", ["u1"])
    assert client.get_all_calls[2:] == [["u1"]]
