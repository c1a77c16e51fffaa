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


# -- the fault-injection matrix (tests/reliability): rows from every test, xdist workers
# included (through one file named in the environment), printed at the end of the run;
# with HEADWATER_WRITE_RELIABILITY_DOC=1 (`make reliability-doc`), docs/reliability.md is
# rewritten when every cell of every runtime ran and passed; a plain test run never
# changes a tracked file.

def pytest_configure(config: pytest.Config) -> None:
    import os
    import tempfile
    import time

    if hasattr(config, "workerinput") or "HEADWATER_MATRIX_FILE" in os.environ:
        return
    fd, name = tempfile.mkstemp(prefix="headwater-matrix-", suffix=".ndjson")
    os.close(fd)
    os.environ["HEADWATER_MATRIX_FILE"] = name
    config._headwater_matrix = (Path(name), time.monotonic())  # type: ignore[attr-defined]


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    import os

    from reliability import matrix

    started = getattr(config, "_headwater_matrix", None)
    if started is None:
        return
    path, t0 = started
    rows = matrix.load(path)
    path.unlink(missing_ok=True)
    os.environ.pop("HEADWATER_MATRIX_FILE", None)
    if not rows:
        return
    terminalreporter.write_sep("=", "fault-injection matrix")
    terminalreporter.write_line(matrix.table(rows))
    if (os.environ.get("HEADWATER_WRITE_RELIABILITY_DOC") == "1" and matrix.complete(rows)
            and exitstatus == 0):
        matrix.write_doc(rows)
        terminalreporter.write_line(f"written: {matrix.DOC}")
