"""Fixtures for the GCP runtime end to end, each emulator started on 127.0.0.1 with a free
port and stopped after the session:

- GCS: ``gcp-storage-emulator`` (PyPI), ``STORAGE_EMULATOR_HOST``;
- Pub/Sub and Firestore: the Google Cloud CLI's emulators (``gcloud``, Java), in their own
  process group, killed as a group;
- BigQuery: :class:`BigQueryStandIn`, a stand-in (not an emulator) at the REST boundary.

The orders pipeline of ``Pulumi.gcp.yaml`` is what runs; its resources are created from
that spec by :func:`orders_stack`.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from headwater.testing.http import JsonHandler, Server

ROOT = Path(__file__).resolve().parents[3]
PROJECT = "test-proj"
USERS = [
    {"user_id": "u1", "tier": "gold", "country": "FR", "since": 2019},
    {"user_id": "u2", "tier": "silver", "country": "DE", "since": 2021},
    {"user_id": "u3", "tier": "bronze", "country": "US", "since": 2023},
]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout}s")


@contextmanager
def process(cmd: list[str], port: int, what: str, env: dict[str, str] | None = None,
            ready: Callable[[], bool] | None = None) -> Iterator[subprocess.Popen]:
    """Start ``cmd`` in its own process group; stop the whole group afterwards."""
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, **(env or {})})
    try:
        try:
            wait_port(port, proc, what)
            deadline = time.monotonic() + 60
            while ready is not None and not ready():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{what} listens but never answered")
                time.sleep(0.3)
        except RuntimeError:
            log.seek(0)
            raise RuntimeError(log.read().decode(errors="replace")[-3000:]) from None
        yield proc
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()


def _gcloud(kind: list[str], port: int, tmp: Path) -> Any:
    missing = [t for t in ("gcloud", "java") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not found: the GCP end-to-end tests need the "
                    "Google Cloud CLI's emulators and a Java runtime (OpenJDK 17) on PATH")
    env = {"CLOUDSDK_CONFIG": str(tmp), "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}
    return process(["gcloud", *kind, f"--host-port=127.0.0.1:{port}", f"--project={PROJECT}"],
                   port, " ".join(kind), env)


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[str]:
    port = free_port()
    with process([str(BIN / "gcp-storage-emulator"), "start", "--host=127.0.0.1",
                  f"--port={port}", "--in-memory"], port, "gcp-storage-emulator"):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    with _gcloud(["beta", "emulators", "pubsub", "start"], port,
                 tmp_path_factory.mktemp("gcloud-pubsub")):
        yield f"127.0.0.1:{port}"


@pytest.fixture
def pubsub(pubsub_emulator: str, monkeypatch: pytest.MonkeyPatch,
           tmp_path: Any) -> Iterator[Any]:
    """Publisher and subscriber clients on the emulator; topics and subscriptions made
    through ``make`` are deleted afterwards (a push subscription left behind would keep
    pushing at a server that is gone)."""
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator)
    from google.cloud import pubsub_v1

    class Clients:
        publisher = pubsub_v1.PublisherClient()
        subscriber = pubsub_v1.SubscriberClient()
        suffix = tmp_path.name.lower().replace("_", "-")[-20:]
        made: list[tuple[str, str]] = []

        def topic(self, name: str) -> str:
            path = self.publisher.topic_path("test-proj", f"{name}-{self.suffix}")
            self.publisher.create_topic(name=path)
            self.made.append(("topic", path))
            return path

        def subscription(self, name: str, topic: str, **request: Any) -> str:
            path = self.subscriber.subscription_path("test-proj", f"{name}-{self.suffix}")
            self.subscriber.create_subscription(
                request={"name": path, "topic": topic, "ack_deadline_seconds": 10, **request})
            self.made.append(("subscription", path))
            return path

    clients = Clients()
    yield clients
    for kind, path in reversed(clients.made):
        if kind == "subscription":
            clients.subscriber.delete_subscription(subscription=path)
        else:
            clients.publisher.delete_topic(topic=path)
    clients.publisher.transport.close()
    clients.subscriber.close()


@pytest.fixture(scope="session")
def firestore_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    with _gcloud(["emulators", "firestore", "start"], port,
                 tmp_path_factory.mktemp("gcloud-firestore")):
        yield f"127.0.0.1:{port}"


# BigQuery's error reasons for the HTTP statuses the stand-in can answer with
REASONS = {429: "rateLimitExceeded", 500: "internalError", 503: "backendError"}


class BigQueryStandIn:
    """A stand-in for BigQuery at its REST boundary, not an emulator: a local HTTP server
    answering ``tabledata.insertAll`` as the service does, for the real
    google-cloud-bigquery client.

    - ``insertId`` de-duplication: a row whose insertId was seen before is not stored
      again (BigQuery does this on a best-effort basis; here always);
    - ``reject(row) -> reason | None`` chooses rows to answer with ``insertErrors``: with
      ``skipInvalidRows`` false, as the client sends, the other rows of that request are
      not inserted either and come back with reason ``stopped``, as in BigQuery;
    - ``transient`` holds insertIds to refuse once with reason ``backendError`` (the other
      rows of the request are inserted);
    - ``fail(n) -> status | None`` answers the n-th ``insertAll`` (from 1) with that HTTP
      error instead, with BigQuery's reason for it (403 ``accessDenied``, which the client
      does not retry; 429 ``rateLimitExceeded``, 500 ``internalError`` and 503
      ``backendError``, which it retries); those go to ``refused``.

    ``rows`` holds what was stored, ``accepted`` every row taken before the insertId
    de-duplication (a resent row shows there twice), ``requests`` every request body
    answered 200.
    """

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.accepted: list[dict[str, Any]] = []
        self.ids: set[str] = set()
        self.requests: list[dict[str, Any]] = []
        self.reject: Callable[[dict[str, Any]], str | None] = lambda row: None
        self.transient: set[str] = set()
        self.fail: Callable[[int], int | None] = lambda n: None
        self.refused: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        stand_in = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.read_json()
                if not self.path.split("?")[0].endswith("/insertAll"):
                    return self.send_json(404, {"error": {"code": 404, "message": self.path}})
                with stand_in.lock:
                    status = stand_in.fail(len(stand_in.requests) + len(stand_in.refused) + 1)
                    if status:
                        stand_in.refused.append(body)
                if status:
                    reason = REASONS.get(status, "accessDenied")
                    return self.send_json(status, {"error": {
                        "code": status, "message": "refused by the test", "errors": [
                            {"reason": reason, "message": "refused by the test"}]}})
                self.send_json(200, stand_in.insert_all(self.path, body))

        self.server = Server(Handler)
        self.url = self.server.url

    def insert_all(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.requests.append({"path": path.split("?")[0], **body})
            rows = body.get("rows", [])
            errors = []
            for n, row in enumerate(rows):
                reason = self.reject(row["json"])
                if reason:
                    errors.append({"index": n, "errors": [{
                        "reason": reason, "location": "value_cents", "debugInfo": "",
                        "message": f"Cannot convert value to integer: {reason}"}]})
                elif row.get("insertId") in self.transient:
                    self.transient.discard(row["insertId"])
                    errors.append({"index": n, "errors": [{
                        "reason": "backendError", "message": "try again"}]})
            invalid = any(e["errors"][0]["reason"] != "backendError" for e in errors)
            if invalid and not body.get("skipInvalidRows"):
                bad = {e["index"] for e in errors}
                errors += [{"index": n, "errors": [{"reason": "stopped", "message": ""}]}
                           for n in range(len(rows)) if n not in bad]
                return {"kind": "bigquery#tableDataInsertAllResponse",
                        "insertErrors": sorted(errors, key=lambda e: e["index"])}
            refused = {e["index"] for e in errors}
            for n, row in enumerate(rows):
                if n in refused:
                    continue
                rid = row.get("insertId")
                self.accepted.append(row["json"])
                if rid is not None and rid in self.ids:
                    continue
                if rid is not None:
                    self.ids.add(rid)
                self.rows.append(row["json"])
            out: dict[str, Any] = {"kind": "bigquery#tableDataInsertAllResponse"}
            if errors:
                out["insertErrors"] = errors
            return out

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def bigquery() -> Iterator[BigQueryStandIn]:
    stand_in = BigQueryStandIn()
    yield stand_in
    stand_in.close()


@dataclass
class Stack:
    """A pipeline's GCP resources on the emulators, and helpers to drive them."""

    spec: Any
    env: dict[str, str]
    bigquery: BigQueryStandIn
    gcs: Any
    raw: str
    deadletter: str
    firestore_db: str = "(default)"
    published: list[str] = field(default_factory=list)

    def put(self, name: str, body: bytes | str) -> Any:
        blob = self.gcs.bucket(self.raw).blob(name)
        blob.upload_from_string(body.encode() if isinstance(body, str) else body)
        return blob

    def notification(self, blob: Any, event_type: str = "OBJECT_FINALIZE",
                     generation: str | int | None = None) -> tuple[bytes, dict[str, str]]:
        """The message GCS publishes for ``blob``: JSON_API_V1 payload and attributes."""
        gen = str(generation if generation is not None else blob.generation)
        payload = {"kind": "storage#object", "id": f"{blob.bucket.name}/{blob.name}/{gen}",
                   "name": blob.name, "bucket": blob.bucket.name, "generation": gen,
                   "metageneration": "1", "contentType": "application/octet-stream",
                   "size": str(blob.size or 0), "storageClass": "STANDARD"}
        if getattr(blob, "time_created", None) is not None:  # as the emulator stored it
            payload["timeCreated"] = blob.time_created.isoformat().replace("+00:00", "Z")
        attrs = {"notificationConfig": f"projects/_/buckets/{self.raw}/notificationConfigs/1",
                 "eventType": event_type, "payloadFormat": "JSON_API_V1",
                 "bucketId": blob.bucket.name, "objectId": blob.name, "objectGeneration": gen,
                 "eventTime": "2024-05-01T10:00:00.000000Z"}
        return json.dumps(payload).encode(), attrs

    def push_body(self, blob: Any, message_id: str = "1", **kw: Any) -> dict[str, Any]:
        """The Pub/Sub push request body carrying ``blob``'s notification."""
        data, attrs = self.notification(blob, **kw)
        return {"message": {"data": base64.b64encode(data).decode(), "attributes": attrs,
                            "messageId": message_id, "publishTime": "2024-05-01T10:00:01Z"},
                "subscription": f"projects/{PROJECT}/subscriptions/orders-push",
                "deliveryAttempt": 1}

    def deadletters(self) -> dict[str, list[dict[str, Any]]]:
        out = {}
        for blob in self.gcs.list_blobs(self.deadletter):
            out[blob.name] = [orjson.loads(x) for x in blob.download_as_bytes().splitlines()]
        return out


@pytest.fixture
def orders_stack(gcs_emulator: str, firestore_emulator: str, bigquery: BigQueryStandIn,
                 monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Stack]:
    """The orders pipeline from ``Pulumi.gcp.yaml``: raw and dead-letter buckets, the users
    lookup collection in Firestore, the BigQuery stand-in, the manifest and the function's
    environment (as the component sets it)."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore, storage

    from headwater.manifest import build_manifest
    from headwater.spec import load_stack_file
    from runtimes.gcp import main

    spec = load_stack_file(ROOT / "Pulumi.gcp.yaml").pipeline("orders")
    manifest = tmp_path / "headwater_manifest.json"
    manifest.write_text(json.dumps(build_manifest(spec)), encoding="utf-8")
    suffix = tmp_path.name.lower().replace("_", "-")[-20:]
    raw, dl = f"raw-{suffix}", f"dl-{suffix}"
    collection = f"users-{suffix}"  # the Firestore emulator keeps data across tests
    env = {
        "STORAGE_EMULATOR_HOST": gcs_emulator,
        "FIRESTORE_EMULATOR_HOST": firestore_emulator,
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "HEADWATER_PROJECT": PROJECT,
        "HEADWATER_MANIFEST": str(manifest),
        "HEADWATER_PIPELINE": spec.name,
        "HEADWATER_DATASET": "headwater_gcp_orders",
        "HEADWATER_TABLE": spec.sink.table,
        "HEADWATER_DEADLETTER_BUCKET": dl,
        "HEADWATER_DEADLETTER_PREFIX": spec.deadletter.prefix,
        "HEADWATER_LOOKUP_COLLECTIONS": json.dumps({"users": collection}),
        "HEADWATER_SECRETS": "{}",
        "HEADWATER_BIGQUERY_ENDPOINT": bigquery.url,
        "HEADWATER_BIGQUERY_ANONYMOUS": "1",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    gcs = storage.Client(project=PROJECT, credentials=AnonymousCredentials())
    gcs.create_bucket(raw)
    gcs.create_bucket(dl)
    fs = firestore.Client(project=PROJECT)
    batch = fs.batch()
    for row in USERS:
        batch.set(fs.collection(collection).document(row["user_id"]), row)
    batch.commit()
    main._reset()
    yield Stack(spec=spec, env=env, bigquery=bigquery, gcs=gcs, raw=raw, deadletter=dl)
    main._reset()


STATE_DATABASE = "hw-test-state"  # a named database, as the component creates


@pytest.fixture
def idempotent_stack(orders_stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """``orders_stack`` with the idempotency collection the component creates (in a named
    state database of the Firestore emulator, a collection per test)."""
    from runtimes.gcp import main

    collection = "processed-" + orders_stack.raw.removeprefix("raw-")
    env = {"HEADWATER_IDEMPOTENCY_COLLECTION": collection,
           "HEADWATER_STATE_DATABASE": STATE_DATABASE, "HEADWATER_TIMEOUT_S": "60"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    orders_stack.env.update(env)
    main._reset()
    return orders_stack


@pytest.fixture
def client(tmp_path: Path) -> Any:
    """The functions-framework app serving ``handle`` from an artifact-style ``main.py``."""
    import functions_framework

    source = tmp_path / "main.py"
    source.write_text("from runtimes.gcp.main import handle  # noqa: F401\n", encoding="utf-8")
    return functions_framework.create_app("handle", str(source)).test_client()


@dataclass
class Served:
    url: str
    statuses: list[int] = field(default_factory=list)  # of every response, in order


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """The function served by the real functions-framework app on a werkzeug HTTP server
    (threaded, 127.0.0.1, a free port), from an artifact-style ``main.py``."""
    import functions_framework
    from werkzeug.serving import make_server

    source = tmp_path / "served_main.py"
    source.write_text("from runtimes.gcp.main import handle  # noqa: F401\n", encoding="utf-8")
    app = functions_framework.create_app("handle", str(source))
    out = Served("")

    def recording(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        def start(status: str, *args: Any) -> Any:
            out.statuses.append(int(status.split()[0]))
            return start_response(status, *args)
        return app(environ, start)

    server = make_server("127.0.0.1", 0, recording, threaded=True)
    out.url = f"http://127.0.0.1:{server.server_port}/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield out
    finally:
        server.shutdown()
        thread.join(10)
