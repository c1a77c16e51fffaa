"""The baked manifest: a pipeline's validated spec plus, per step, what to import.

Built at plan / package time from the registry (:func:`headwater.manifest.build_manifest`);
read by a deployed function at cold start (:func:`load_steps`), which imports each step's
``module:attr`` directly and never scans package metadata. This module imports neither
pydantic nor the registry, so it ships in every artifact.

    {"version": 1,
     "pipeline": {... PipelineSpec as plain JSON ...},
     "steps": [{"index": 0, "use": "cents", "ref": "transforms.builtins.cents:make",
                "distribution": "headwater", "version": "0.1.0", "settings": {...}}]}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transforms.contract import SettingsError, import_ref, instantiate

from .engine import Step

__all__ = ["MANIFEST_NAME", "VERSION", "ManifestError", "load_manifest", "load_steps"]

MANIFEST_NAME = "headwater_manifest.json"
VERSION = 1


class ManifestError(RuntimeError):
    """The manifest is missing, malformed, or names something that does not import."""


def load_steps(manifest: dict[str, Any]) -> list[Step]:
    """Import and instantiate the chain described by ``manifest``."""
    if manifest.get("version") != VERSION:
        raise ManifestError(f"manifest version {manifest.get('version')!r} is not {VERSION}")
    name = manifest.get("pipeline", {}).get("name", "?")
    steps = []
    for s in manifest.get("steps", []):
        where = f"pipeline {name!r}, step {s['index']} ({s['use']})"
        try:
            obj = import_ref(s["ref"])
        except Exception as exc:
            raise ManifestError(
                f"{where}: cannot import {s['ref']} from distribution "
                f"{s.get('distribution', '?')}: {type(exc).__name__}: {exc}"
            ) from exc
        try:
            fn = instantiate(obj, s.get("settings") or {}, s["use"])
        except SettingsError as exc:
            what = "" if exc.setting == "*" else f"setting {exc.setting!r}: "
            raise ManifestError(f"{where}: {what}{exc.reason}") from exc
        steps.append(Step.of(s["index"], s["use"], fn))
    return steps


def load_manifest(path: str | Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"manifest {path} not found: was the artifact built with "
                            "`headwater package`?") from None
    except ValueError as exc:
        raise ManifestError(f"manifest {path} is not valid JSON: {exc}") from None
