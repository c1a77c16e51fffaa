"""Every pipeline of ``Pulumi.gcp.yaml`` end to end, in the environment the component
gives its Cloud Function, not one written by hand.

For each pipeline of the stack file (read from it, so a pipeline added later runs too,
and fails here until it has a sample below):

1. the real Pulumi program runs offline under the GCP mocks
   (:func:`headwater.program.plan_program`); its output ``function_settings[pipeline]`` is
   exactly the function's environment, ``raw_buckets[pipeline]`` its source bucket;
2. the resources those settings name are made, with exactly those names, on the session's
   emulators (gcp-storage-emulator: the raw and dead-letter buckets; Firestore emulator:
   the lookup collections in ``HEADWATER_FIRESTORE_DATABASE``; the idempotency collection
   in ``HEADWATER_STATE_DATABASE`` needs no creating) and the BigQuery stand-in;
3. the process environment is those settings, plus only the emulator endpoints and the
   manifest (``build_manifest`` of the pipeline's spec); every other ``HEADWATER_*``
   variable is removed;
4. Secret Manager has no emulator here: the runtime's client (``clients.secrets()``) is a
   stand-in at the client boundary, :class:`SecretManagerStandIn`, answering
   ``access_secret_version`` with the documented ``AccessSecretVersionResponse`` for the
   version :class:`runtimes.gcp.ports.SecretStore` asks for (the reference in
   ``HEADWATER_SECRETS`` plus ``/versions/latest``) and NotFound for any other name;
5. a small object is written under the pipeline's source prefix and the Pub/Sub push body
   of its GCS notification goes through the real functions-framework app; the rows in
   BigQuery, the dead-letter entries and a second delivery (which writes nothing) are
   checked.

Names are the rendered ones, never made unique per test: each pipeline's names are used
by its one test only, and nothing else in the suite uses them (the other GCP tests name
their own buckets, collections and state database per test). The Firestore emulator keeps
data across tests, but what is written there cannot collide either: the users rows are
the same on every run (``set``), and an idempotency document is keyed by the object's
generation, which gcp-storage-emulator takes from the clock in nanoseconds.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from e2e.gcp.conftest import USERS, Stack
from e2e.samples import BAD, DAY, order

from headwater.spec import load_stack_file
from runtimes.core.idempotency import COMPLETED

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[3]
STACK = load_stack_file(ROOT / "Pulumi.gcp.yaml")
LOOKUP_ROWS = {"users": ("user_id", USERS)}  # a lookup table's key and rows
SECRET_VALUES = {"email-key": "a-test-email-key"}  # by the secret's logical name


@dataclass
class Sample:
    """One object for a pipeline: its name under the source prefix, its bytes, the rows it
    becomes and its dead-letter entries as ``(line, step, error_type)``."""

    name: str
    body: str
    rows: list[dict[str, Any]]
    deadletters: list[tuple[int, str, str]]


def _hashed(email: str) -> str:
    key = SECRET_VALUES["email-key"].encode()
    return hmac.new(key, email.encode(), hashlib.sha256).hexdigest()


SAMPLES = {
    # a good order, a truncated line, a bad amount, an unknown user
    "orders": Sample(DAY + "mixed.ndjson", BAD,
                     [order("7", "u1", 250, "BOOKS", "2024-05-01T14:00:00Z")],
                     [(2, "decode", "JSONDecodeError"), (3, "1:cents", "ValueError"),
                      (4, "3:enrich", "LookupError")]),
    # a good row; a row without an email; a country the plugin does not know (kept, as
    # its on_unknown: keep says, without a name); a row short of fields
    "signups": Sample(
        "raw/signups/2024/05/01/signups.csv",
        "email,country,plan\n"
        "ada@example.org,fr,pro\n"
        ",DE,free\n"
        "bo@example.org,zz,team\n"
        "cy@example.org\n",
        [{"email": _hashed("ada@example.org"), "country": "fr", "country_name": "France",
          "plan": "pro"},
         {"email": _hashed("bo@example.org"), "country": "zz", "plan": "team"}],
        [(3, "0:require", "ValueError"), (5, "decode", "CSVError")]),
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The stack's outputs from the real program under the GCP mocks, with a tiny zip for
    every function's artifact (nothing is packaged)."""
    from headwater.testing.program import plan_stack

    return plan_stack("gcp", tmp_path_factory.mktemp("artifact"), ROOT).outputs


class SecretManagerStandIn:
    """The Secret Manager client, at its boundary: ``access_secret_version`` answers the
    versions in ``values`` (full version name -> text) as the service does, records every
    name asked for in ``asked``, and raises NotFound for any other."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.asked: list[str] = []

    def access_secret_version(self, request: Any = None, *, name: str | None = None,
                              **_: Any) -> Any:
        from google.api_core.exceptions import NotFound
        from google.cloud import secretmanager

        name = name or (request["name"] if isinstance(request, dict) else request.name)
        self.asked.append(name)
        if name not in self.values:
            raise NotFound(f"Secret Version [{name}] not found.")
        data = self.values[name].encode()
        return secretmanager.AccessSecretVersionResponse(
            name=name.replace("/versions/latest", "/versions/1"),
            payload=secretmanager.SecretPayload(data=data))


def _function_env(settings: dict[str, str], endpoints: dict[str, str], manifest: Path,
                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The function's environment: ``settings``, the emulator endpoints and the manifest;
    no other ``HEADWATER_*`` variable."""
    for name in os.environ:
        if name.startswith("HEADWATER_") and name != "HEADWATER_MATRIX_FILE":
            monkeypatch.delenv(name)
    for name, value in {**settings, **endpoints, "HEADWATER_MANIFEST": str(manifest)}.items():
        monkeypatch.setenv(name, value)


def _rows(stack: Stack) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "_headwater_id"} for r in stack.bigquery.rows]


@pytest.mark.parametrize("pipeline", [p.name for p in STACK.pipelines])
def test_every_pipeline_runs_in_the_environment_the_component_renders(
        pipeline, rendered, gcs_emulator, firestore_emulator, bigquery, client, example_plugin,
        monkeypatch, tmp_path):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore, storage

    from headwater.manifest import build_manifest
    from runtimes.gcp import clients, main

    if pipeline not in SAMPLES:
        pytest.fail(f"pipeline {pipeline!r} of Pulumi.gcp.yaml has no sample: add one to SAMPLES")
    sample, spec = SAMPLES[pipeline], STACK.pipeline(pipeline)
    settings = dict(rendered["function_settings"][pipeline])
    raw, deadletter = rendered["raw_buckets"][pipeline], settings["HEADWATER_DEADLETTER_BUCKET"]
    project = settings["HEADWATER_PROJECT"]

    # the resources, by the rendered names
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator)
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore_emulator)
    gcs = storage.Client(project=project, credentials=AnonymousCredentials())
    gcs.create_bucket(raw)
    gcs.create_bucket(deadletter)
    collections = json.loads(settings["HEADWATER_LOOKUP_COLLECTIONS"])
    if collections:
        fs = firestore.Client(project=project, database=settings.get(
            "HEADWATER_FIRESTORE_DATABASE") or "(default)")
        batch = fs.batch()
        for table, collection in collections.items():
            key, rows = LOOKUP_ROWS[table]
            for row in rows:
                batch.set(fs.collection(collection).document(str(row[key])), row)
        batch.commit()
    secrets = SecretManagerStandIn({
        f"{ref}/versions/latest": SECRET_VALUES[logical]
        for logical, ref in json.loads(settings["HEADWATER_SECRETS"]).items()})
    monkeypatch.setattr(clients, "secrets", lambda: secrets)

    # the function's environment
    manifest = tmp_path / "headwater_manifest.json"
    manifest.write_text(json.dumps(build_manifest(spec)), encoding="utf-8")
    _function_env(settings, {"STORAGE_EMULATOR_HOST": gcs_emulator,
                             "FIRESTORE_EMULATOR_HOST": firestore_emulator,
                             "HEADWATER_BIGQUERY_ENDPOINT": bigquery.url,
                             "HEADWATER_BIGQUERY_ANONYMOUS": "1"}, manifest, monkeypatch)
    main._reset()
    try:
        st = Stack(spec=spec, env=settings, bigquery=bigquery, gcs=gcs, raw=raw,
                   deadletter=deadletter)
        blob = st.put(sample.name, sample.body)
        body = st.push_body(blob)
        assert client.post("/", json=body).status_code == 204

        assert sorted(_rows(st), key=json.dumps) == sorted(sample.rows, key=json.dumps)
        assert {r["path"] for r in bigquery.requests} == {
            f"/bigquery/v2/projects/{project}/datasets/{settings['HEADWATER_DATASET']}"
            f"/tables/{settings['HEADWATER_TABLE']}/insertAll"}
        (name, entries), = st.deadletters().items()
        assert name.startswith(settings["HEADWATER_DEADLETTER_PREFIX"] + pipeline + "/")
        source = {"bucket": raw, "key": sample.name, "version": str(blob.generation)}
        assert sorted((e["line"], e["step"], e["error_type"]) for e in entries) == \
            sample.deadletters
        assert all(e["source"] == source and e["pipeline"] == pipeline for e in entries)
        assert secrets.asked == [f"{ref}/versions/latest" for ref in spec.secrets.values()]
        # the claim is in the rendered idempotency collection of the rendered database
        state = firestore.Client(project=project, database=settings["HEADWATER_STATE_DATABASE"])
        claims = [d.to_dict() for d in state.collection(
            settings["HEADWATER_IDEMPOTENCY_COLLECTION"]).stream()]
        assert [(c["bucket"], c["object"], c["status"]) for c in claims
                if c["generation"] == str(blob.generation)] == [(raw, sample.name, COMPLETED)]

        # a second delivery of the same notification writes nothing again
        requests, dead = len(bigquery.requests), st.deadletters()
        assert client.post("/", json=body).status_code == 204
        assert len(bigquery.requests) == requests and st.deadletters() == dead
        assert sorted(_rows(st), key=json.dumps) == sorted(sample.rows, key=json.dumps)
    finally:
        main._reset()
