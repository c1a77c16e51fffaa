"""Every pipeline of the example Azure stack, ``Pulumi.azure.yaml``, end to end on Azurite
with the app settings the component renders, not settings written for the test.

For each pipeline read from the stack file (a pipeline added later is covered too, and
fails here until it has a sample), the real Pulumi program runs under the Azure mocks
(:func:`headwater.program.plan_program`), and the function's environment is that
pipeline's stack output ``function_settings`` (headwater's own app settings, checked to be
the ones on its ``<pipeline>-function`` WebApp) plus only what the platform or the
emulator supplies:

- ``HEADWATER_STORAGE_CONNECTION_STRING``, the emulator-only override
  (runtimes/azure/clients.py): Azurite is one account, ``devstoreaccount1``, and cannot
  serve the rendered ``HEADWATER_BLOB_ACCOUNT_URL``/``HEADWATER_TABLE_ACCOUNT_URL`` (the
  pipeline's own storage account). For the same reason the Event Grid notification's blob
  URL carries Azurite's account URL: in Azure it is the pipeline's account URL, which the
  function compares with its own before it reads a blob;
- ``HEADWATER_MANIFEST``, the manifest the artifact bakes (``build_manifest(spec)``);
- ``HEADWATER_SECRET_<NAME>`` for each of the pipeline's secrets, holding a value: the
  component renders a Key Vault reference into that app setting (checked here) and the
  platform resolves it before the worker starts.

The containers and tables created on Azurite have exactly the rendered names. The names
repeat across pipelines (every pipeline has a ``raw`` and a ``deadletter`` container in
its own account) but never within one pipeline, and storage is emptied between tests
(each xdist worker has its own Azurite), so no name is changed.

The processed hub is the :class:`~azure_harness.StandInHub` at the client boundary.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from azure_harness import FunctionContext, hub_events, indexed_function
from e2e.samples import BAD, DAY, GOOD, WRITTEN

from headwater.spec import load_stack_file

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[3]
STACK_FILE = ROOT / "Pulumi.azure.yaml"
PIPELINES = [p.name for p in load_stack_file(STACK_FILE).pipelines]
FUNCTION = indexed_function()
KEY_VAULT_REFERENCE = "@Microsoft.KeyVault(SecretUri="
RESOLVED_SECRET = "resolved-from-key-vault"  # what the platform puts in the app setting


def _hashed(value: str) -> str:
    return hmac.new(RESOLVED_SECRET.encode(), value.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Sample:
    """A blob for a pipeline, the records the hub must get from it, and its dead-letter
    entries as (line, step, error_type)."""

    name: str
    body: str
    written: list[dict[str, Any]]
    dead: list[tuple[int, str, str]]


SAMPLES = {
    # three good orders, then a good one, a truncated line, a bad amount, an unknown user
    "orders": Sample(DAY + "mixed.ndjson", GOOD + BAD, WRITTEN[:3] + [WRITTEN[6]],
                     [(5, "decode", "JSONDecodeError"), (6, "1:cents", "ValueError"),
                      (7, "3:enrich", "LookupError")]),
    # a good row; a row whose email cell is empty (the text "": the stack's `require`
    # counts it as missing, allow_empty_string: false); a row without the email column
    # (and the others); a country code the plugin does not know: its default
    # on_unknown=keep leaves country_name unset rather than failing the record
    "signups": Sample(
        "raw/signups/2024/05/01/signups.csv",
        "email,country,plan\nann@example.org,de,pro\n,FR,free\nFR\ndee@example.org,xx,pro\n",
        [{"email": _hashed("ann@example.org"), "country": "de", "country_name": "Germany",
          "plan": "pro"},
         {"email": _hashed("dee@example.org"), "country": "xx", "plan": "pro"}],
        [(3, "0:require", "ValueError"), (4, "decode", "CSVError")]),
}


def _records(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events' records without the engine's stable id, in a stable order."""
    return sorted(({k: v for k, v in e.items() if k != "_headwater_id"} for e in events),
                  key=lambda r: orjson.dumps(r, option=orjson.OPT_SORT_KEYS))


def _invoke(body: bytes) -> None:
    FUNCTION.get_user_function()(hub_events([body]), FunctionContext())


@pytest.fixture
def deployed(pipeline: str, example_plugin, function_on_azurite, azurite,
             tmp_path: Path) -> Any:
    """The pipeline's storage on Azurite and its function's environment, both from the
    app settings the Pulumi program renders for it."""
    from headwater.manifest import build_manifest
    from headwater.testing.program import plan_stack
    from runtimes.core.envsecrets import secret_env_name

    spec = load_stack_file(STACK_FILE).pipeline(pipeline)
    graph = plan_stack("azure", tmp_path, ROOT)
    settings = graph.outputs["function_settings"][pipeline]
    app = graph.one("azure-native:web:WebApp", f"{pipeline}-function")
    app_settings = {s["name"]: s["value"] for s in app.inputs["siteConfig"]["appSettings"]}
    assert {k: app_settings.get(k) for k in settings} == settings
    env = dict(settings)
    for name in spec.secrets:
        var = secret_env_name(name)
        assert app_settings[var].startswith(KEY_VAULT_REFERENCE), var
        env[var] = RESOLVED_SECRET
    manifest = tmp_path / "headwater_manifest.json"
    manifest.write_text(json.dumps(build_manifest(spec)), encoding="utf-8")
    env.update(HEADWATER_MANIFEST=str(manifest),
               HEADWATER_STORAGE_CONNECTION_STRING=azurite.connection_string)
    return function_on_azurite(
        spec, env, raw=settings["HEADWATER_RAW_CONTAINER"],
        deadletter=settings["HEADWATER_DEADLETTER_CONTAINER"],
        # tables to create; the setting itself goes to the function as rendered
        lookups=json.loads(settings["HEADWATER_LOOKUP_TABLES"]) or {},
        claims=settings["HEADWATER_IDEMPOTENCY_TABLE"])


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_every_pipeline_runs_with_the_settings_the_component_renders(pipeline, deployed):
    st = deployed
    sample = SAMPLES.get(pipeline)
    assert sample is not None, f"add a sample for pipeline {pipeline!r} to SAMPLES"
    assert sample.name.startswith(st.spec.source.prefix)
    blob = st.put(sample.name, sample.body)
    body = st.notification(blob)

    _invoke(body)

    assert _records(st.hub.events) == _records(sample.written)
    assert b"@example.org" not in orjson.dumps(st.hub.events)  # no raw email reaches the hub
    dead = st.deadletters()
    entries = [e for name in sorted(dead) for e in dead[name]]
    source = {"bucket": st.raw, "key": sample.name, "version": blob["etag"]}
    # decode failures are written before step failures: compared in line order
    assert sorted((e["line"], e["pipeline"], e["source"], e["step"], e["error_type"])
                  for e in entries) == [(d[0], pipeline, source, *d[1:]) for d in sample.dead]
    assert st.parked() == {}

    _invoke(body)  # Event Grid delivers at least once: the same notification again
    assert len(st.hub.events) == len(sample.written)
    assert st.deadletters() == dead
