"""Shared fixtures. Emulator fixtures (moto server ...) live in tests/e2e/<cloud>/conftest.py."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_PLUGIN = ROOT / "examples" / "plugins" / "headwater-geo"


def pip_install_copy(src: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Install the distribution at ``src`` with pip into a fresh folder, as a user's
    ``pip install`` would (dist-info, entry points), building from a copy so that the
    build leaves nothing in the source tree. Returns the folder to put on ``sys.path``."""
    copy = tmp_path_factory.mktemp(f"{src.name}-src") / src.name
    shutil.copytree(src, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp_path_factory.mktemp(f"{src.name}-site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(copy)],
        check=True,
    )
    return target


@pytest.fixture(scope="session")
def pip_install(tmp_path_factory: pytest.TempPathFactory):
    """:func:`pip_install_copy` for tests: ``pip_install(src) -> site folder``."""
    return lambda src: pip_install_copy(src, tmp_path_factory)


@pytest.fixture(scope="session")
def example_plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin distribution, really installed into a fresh folder."""
    return pip_install_copy(EXAMPLE_PLUGIN, tmp_path_factory)


@pytest.fixture
def example_plugin(example_plugin_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """Put the installed example plugin on ``sys.path`` for one test and rescan the registry."""
    from transforms.registry import default_registry

    monkeypatch.syspath_prepend(str(example_plugin_dir))
    default_registry.cache_clear()
    yield example_plugin_dir
    sys.modules.pop("headwater_geo", None)
    default_registry.cache_clear()
