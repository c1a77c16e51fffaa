"""Shared fixtures. Emulator fixtures (moto server ...) live in tests/e2e/<cloud>/conftest.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_PLUGIN = ROOT / "examples" / "plugins" / "headwater-geo"


@pytest.fixture(scope="session")
def example_plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin distribution, really installed (``pip install --target``) into a
    fresh folder: its dist-info and entry point are what a user's ``pip install`` makes."""
    target = tmp_path_factory.mktemp("plugin-site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(EXAMPLE_PLUGIN)],
        check=True,
    )
    return target


@pytest.fixture
def example_plugin(example_plugin_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """Put the installed example plugin on ``sys.path`` for one test and rescan the registry."""
    from transforms.registry import default_registry

    monkeypatch.syspath_prepend(str(example_plugin_dir))
    default_registry.cache_clear()
    yield example_plugin_dir
    sys.modules.pop("headwater_geo", None)
    default_registry.cache_clear()
