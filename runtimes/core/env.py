"""A deployed function's configuration: its baked manifest and the environment variables
its component sets. One reader for every cloud adapter."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .bootstrap import PipelineSettings
from .manifest import MANIFEST_NAME, ManifestError, load_manifest

__all__ = ["env_json", "function_manifest", "required_env"]

# the artifact's root: the folder holding runtimes/ and the manifest
ARTIFACT_ROOT = Path(__file__).resolve().parents[2]


def env_json(name: str) -> dict[str, Any]:
    """A JSON-object environment variable (unset or empty: ``{}``)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ManifestError(f"environment variable {name} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ManifestError(f"environment variable {name} must be a JSON object")
    return value


def required_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ManifestError(f"environment variable {name} is not set (the component sets it)")
    return value


def function_manifest() -> tuple[dict[str, Any], PipelineSettings]:
    """The manifest (``HEADWATER_MANIFEST`` or the artifact's own) and its settings, checked
    against ``HEADWATER_PIPELINE`` so an artifact never runs as another pipeline's function."""
    manifest = load_manifest(os.environ.get("HEADWATER_MANIFEST") or ARTIFACT_ROOT / MANIFEST_NAME)
    settings = PipelineSettings.from_manifest(manifest)
    expected = os.environ.get("HEADWATER_PIPELINE")
    if expected and expected != settings.name:
        raise ManifestError(f"HEADWATER_PIPELINE is {expected!r} but the manifest is for "
                            f"pipeline {settings.name!r}: the artifact belongs to another "
                            "function")
    return manifest, settings
