"""Fixtures for the Azure runtime end to end: Azurite (the Azure Storage emulator, npm
``azurite`` pinned in ``.ci/node/package.json``) on 127.0.0.1 with Blob and Table
services, the orders pipeline of ``Pulumi.azure.yaml`` set up on it from that same spec,
and a stand-in for the processed Event Hub.

Azurite runs once per test session on free ports; containers and tables are emptied
between tests. Each test gets the app settings the component would set (pointed at
Azurite through the emulator-only ``HEADWATER_STORAGE_CONNECTION_STRING``) and a handler
with no cached clients or engine.
"""

from __future__ import annotations

import copy
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from azure_harness import EVENTS, StandInHub

ROOT = Path(__file__).resolve().parents[3]
AZURITE = ROOT / ".ci" / "node" / "node_modules" / ".bin" / "azurite"
ACCOUNT = "devstoreaccount1"
# Azurite's well-known development account key (public, documented by Microsoft)
KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
       "KBHBeksoGMGw==")
SUBSCRIPTION = "00000000-0000-4000-8000-000000000001"
USERS = [
    {"user_id": "u1", "tier": "gold", "country": "FR", "since": 2019},
    {"user_id": "u2", "tier": "silver", "country": "DE", "since": 2021},
    {"user_id": "u3", "tier": "bronze", "country": "US", "since": 2023},
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"azurite exited with code {proc.returncode}: "
                               f"{proc.stderr.read().decode(errors='replace') if proc.stderr else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"azurite did not listen on 127.0.0.1:{port} within {timeout}s")


@dataclass(frozen=True)
class Azurite:
    blob_port: int
    table_port: int

    @property
    def blob_url(self) -> str:
        return f"http://127.0.0.1:{self.blob_port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
                f"BlobEndpoint={self.blob_url};"
                f"TableEndpoint=http://127.0.0.1:{self.table_port}/{ACCOUNT};")


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    exe = AZURITE if AZURITE.exists() else shutil.which("azurite")
    if exe is None:
        pytest.fail("azurite is not installed: run `npm ci --prefix .ci/node` (what .ci/run "
                    "does; needs node and npm)", pytrace=False)
    ports = Azurite(_free_port(), _free_port())
    location = tmp_path_factory.mktemp("azurite")
    proc = subprocess.Popen(
        [str(exe), "--silent", "--location", str(location), "--skipApiVersionCheck",
         "--blobHost", "127.0.0.1", "--blobPort", str(ports.blob_port),
         "--tableHost", "127.0.0.1", "--tablePort", str(ports.table_port),
         "--queueHost", "127.0.0.1", "--queuePort", str(_free_port())],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait(ports.blob_port, proc)
        _wait(ports.table_port, proc)
        yield ports
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Stack:
    """The orders pipeline's storage on Azurite, the processed-hub stand-in, and helpers to
    drive the function with the events Event Grid would put on the notifications hub."""

    spec: Any
    azurite: Azurite
    blob: BlobServiceClient
    tables: TableServiceClient
    hub: StandInHub
    raw: str = "raw"
    deadletter: str = "deadletter"
    users: str = "hwordersusers"
    claims: str = "hwordersclaims"
    env: dict[str, str] = field(default_factory=dict)

    def put(self, name: str, body: bytes | str) -> dict[str, Any]:
        data = body.encode() if isinstance(body, str) else body
        self.blob.get_blob_client(self.raw, name).upload_blob(data, overwrite=True)
        return self.properties(name)

    def properties(self, name: str) -> dict[str, Any]:
        props = self.blob.get_blob_client(self.raw, name).get_blob_properties()
        return {"name": name, "etag": props.etag, "size": props.size,
                "created": props.last_modified.isoformat().replace("+00:00", "Z")}

    def notification(self, blob: dict[str, Any], schema: str = "eventgrid",
                     container: str | None = None) -> bytes:
        """The body Event Grid puts on the hub for ``blob``: Microsoft's documented sample
        (tests/events/azure) with this blob's subject, url, eTag and size."""
        file = "eventgrid_blob_created.json" if schema == "eventgrid" else \
            "cloudevents_blob_created.json"
        (event,) = copy.deepcopy(json.loads((EVENTS / file).read_text(encoding="utf-8")))
        cont = container or self.raw
        source = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/headwater/providers/"
                  f"Microsoft.Storage/storageAccounts/{ACCOUNT}")
        event["topic" if schema == "eventgrid" else "source"] = source
        event["subject"] = f"/blobServices/default/containers/{cont}/blobs/{blob['name']}"
        event["data"].update(eTag=blob["etag"], contentLength=blob["size"],
                             url=f"{self.azurite.blob_url}/{cont}/{blob['name']}")
        if blob.get("created"):  # the event's time is when the blob was written
            event["eventTime" if schema == "eventgrid" else "time"] = blob["created"]
        # Event Grid schema: the hub event's body is an array; CloudEvents: one object
        return json.dumps([event] if schema == "eventgrid" else event).encode()

    def deadletters(self) -> dict[str, list[dict[str, Any]]]:
        out = {}
        client = self.blob.get_container_client(self.deadletter)
        for b in client.list_blobs(name_starts_with=self.spec.deadletter.prefix):
            if "/notifications/" in b.name:
                continue
            body = client.download_blob(b.name).readall()
            out[b.name] = [orjson.loads(line) for line in body.splitlines()]
        return out

    def claim(self, blob: dict[str, Any]) -> dict[str, Any]:
        """The claims table's entity of this blob version."""
        from runtimes.azure.idempotency import TableIdempotency

        row = TableIdempotency.row_key(TableIdempotency.key(self.raw, blob["name"], blob["etag"]))
        return dict(self.tables.get_table_client(self.claims).get_entity(self.spec.name, row))

    def parked(self) -> dict[str, dict[str, Any]]:
        client = self.blob.get_container_client(self.deadletter)
        prefix = f"{self.spec.deadletter.prefix}notifications/"
        return {b.name: orjson.loads(client.download_blob(b.name).readall())
                for b in client.list_blobs(name_starts_with=prefix)}


@pytest.fixture
def function_on_azurite(azurite: Azurite, monkeypatch: pytest.MonkeyPatch
                        ) -> Iterator[Callable[..., Stack]]:
    """``make(spec, env, raw=, deadletter=, lookups=, claims=) -> Stack``: Azurite emptied,
    then the containers ``raw`` and ``deadletter``, the claims table and each lookup table
    of ``lookups`` (logical ``users`` -> Table Storage table) with the :data:`USERS` rows
    (PartitionKey = the logical table, RowKey = user_id, plus a row of another partition
    sharing RowKey u1) created; ``env`` set as the function's environment, a handler with
    no cached clients or engine, and a :class:`StandInHub` as the processed hub."""
    from runtimes.azure import clients, handler

    made: list[Stack] = []

    def make(spec: Any, env: dict[str, str], *, raw: str, deadletter: str,
             lookups: dict[str, str], claims: str) -> Stack:
        blob = BlobServiceClient.from_connection_string(azurite.connection_string)
        tables = TableServiceClient.from_connection_string(azurite.connection_string)
        for c in blob.list_containers():
            blob.delete_container(c.name)
        for t in tables.list_tables():
            tables.delete_table(t.name)
        st = Stack(spec=spec, azurite=azurite, blob=blob, tables=tables, hub=StandInHub(),
                   raw=raw, deadletter=deadletter, users=lookups.get("users", ""),
                   claims=claims, env=env)
        made.append(st)
        blob.create_container(raw)
        blob.create_container(deadletter)
        unknown = set(lookups) - {"users"}
        assert not unknown, f"no rows to write for lookup tables {sorted(unknown)}"
        for physical in lookups.values():
            table = tables.create_table(physical)
            for row in USERS:
                table.create_entity({"PartitionKey": "users", "RowKey": row["user_id"], **row})
            table.create_entity({"PartitionKey": "other", "RowKey": "u1",
                                 "tier": "WRONG-PARTITION"})
        tables.create_table(claims)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        handler._reset()
        clients.set_producer(st.hub)
        return st

    yield make
    handler._reset()
    for st in made:
        st.blob.close()
        st.tables.close()


@pytest.fixture
def orders_stack(function_on_azurite: Callable[..., Stack], azurite: Azurite, tmp_path: Path
                 ) -> Stack:
    """Containers, the lookup table with its rows and the app settings of the orders
    pipeline in ``Pulumi.azure.yaml``; the processed hub is a :class:`StandInHub`."""
    from headwater.manifest import build_manifest
    from headwater.spec import load_stack_file

    spec = load_stack_file(ROOT / "Pulumi.azure.yaml").pipeline("orders")
    manifest_path = tmp_path / "headwater_manifest.json"
    manifest_path.write_text(json.dumps(build_manifest(spec)), encoding="utf-8")
    raw, deadletter, users, claims = "raw", "deadletter", "hwordersusers", "hwordersclaims"
    env = {
        "HEADWATER_MANIFEST": str(manifest_path),
        "HEADWATER_PIPELINE": spec.name,
        "HEADWATER_STORAGE_CONNECTION_STRING": azurite.connection_string,
        "HEADWATER_RAW_CONTAINER": raw,
        "HEADWATER_DEADLETTER_CONTAINER": deadletter,
        "HEADWATER_DEADLETTER_PREFIX": spec.deadletter.prefix,
        "HEADWATER_LOOKUP_TABLES": json.dumps({"users": users}),
        "HEADWATER_NOTIFICATIONS_HUB": "notifications",
        "HEADWATER_CONSUMER_GROUP": "function",
        "HEADWATER_IDEMPOTENCY_TABLE": claims,
        "HEADWATER_LEASE_S": "90",
    }
    return function_on_azurite(spec, env, raw=raw, deadletter=deadletter,
                               lookups={"users": users}, claims=claims)
