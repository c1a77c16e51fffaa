"""``headwater replay`` on a deployed stack (AWS, GCP, Azure).

The replay runs where the command runs, as the deployed function would: the cloud
adapter's runtime (:mod:`runtimes.aws.handler`, :mod:`runtimes.gcp.main`,
:mod:`runtimes.azure.handler`) is built from the function's own settings, which every
cloud component exports as the stack output ``function_settings`` (resource names and
secret *references*, never secret values), and from the pipeline's *current* chain,
built here from the stack file, so a fixed transform or lookup is what the entries meet.
It reads and moves the dead-letter files through the runtime's own dead-letter store,
claims each file in the function's own idempotency store (so two replays at once never
replay one file both), and writes to the runtime's own sink (Firehose, BigQuery, the processed Event Hub) with the
caller's credentials. On Azure the notifications the function parked (a blob it could
not read on its last attempt) are run again too.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import orjson

from runtimes.core.manifest import MANIFEST_NAME
from runtimes.core.replay import ReplayReport, replay

__all__ = ["ADAPTERS", "ReplayError", "function_environment", "function_settings",
           "replay_deployed"]

ADAPTERS = {"aws": "runtimes.aws.handler", "gcp": "runtimes.gcp.main",
            "azure": "runtimes.azure.handler"}


class ReplayError(Exception):
    """The stack cannot be replayed as asked; the message says what to do."""


def function_settings(outputs: Mapping[str, Any], pipeline: str,
                      stack: str) -> dict[str, str]:
    """The deployed function's settings for ``pipeline`` from the stack's outputs."""
    table = outputs.get("function_settings")
    if not isinstance(table, Mapping):
        raise ReplayError(f"stack {stack!r} has no output function_settings: it was deployed "
                          "by an older headwater; run `pulumi up` with this one first")
    settings = table.get(pipeline)
    if not isinstance(settings, Mapping):
        raise ReplayError(f"pipeline {pipeline!r} is not deployed in stack {stack!r} "
                          f"(deployed: {', '.join(sorted(table)) or 'none'})")
    hidden = sorted(k for k, v in settings.items() if v == "[secret]")
    if hidden:
        raise ReplayError(f"function_settings of {pipeline!r} show {', '.join(hidden)} as "
                          "[secret]: pass the outputs with `pulumi stack output --json "
                          "--show-secrets`")
    return {str(k): str(v) for k, v in settings.items()}


@contextmanager
def function_environment(settings: Mapping[str, str],
                         manifest: Mapping[str, Any]) -> Iterator[None]:
    """The process environment as the function sees it: its settings, and the manifest
    (the current chain) in a temporary file named by ``HEADWATER_MANIFEST``. Variables
    already set here and not among the settings (credentials, endpoints, a secret a
    Key Vault reference stands for) stay; everything is restored on exit."""
    with tempfile.TemporaryDirectory(prefix="headwater-replay-") as tmp:
        path = Path(tmp) / MANIFEST_NAME
        path.write_bytes(orjson.dumps(manifest))
        with mock.patch.dict(os.environ, {**settings, "HEADWATER_MANIFEST": str(path)}):
            yield


def replay_deployed(cloud: str, manifest: Mapping[str, Any], settings: Mapping[str, str], *,
                    since: str | None = None, dry_run: bool = False) -> ReplayReport:
    """Replay ``manifest``'s pipeline on a deployed stack (see the module docstring)."""
    if cloud not in ADAPTERS:
        raise ReplayError(f"no replay for cloud {cloud!r} (known: {', '.join(ADAPTERS)})")
    if manifest.get("error"):
        raise ReplayError(f"the pipeline's chain cannot be built: {manifest['error']}")
    adapter = importlib.import_module(ADAPTERS[cloud])
    with function_environment(settings, manifest):
        rt = adapter.reload()
        deadletter = rt.engine.deadletter
        store = deadletter.store()
        # each file a claimed record in the function's own idempotency store: two replays
        # at once never replay one file both
        report = replay(store, deadletter.prefix, rt.engine, since=since, dry_run=dry_run,
                        claims=rt.idempotency,
                        claim_key=lambda name: f"{store.location}/{name}#replay")
        if cloud == "azure":
            adapter.replay_parked(report, since=since, dry_run=dry_run)
    return report
