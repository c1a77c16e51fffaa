"""The Pulumi-program harness for tests: :mod:`headwater.program` (re-exported here), and
an example stack planned offline as `headwater plan` does."""

from __future__ import annotations

import zipfile
from pathlib import Path

from headwater.program import (
    ARTIFACT_STANDIN_ENV,
    ROOT,
    Graph,
    Res,
    plan_program,
    run,
    run_program,
    standin_artifacts,
)

__all__ = ["ARTIFACT_STANDIN_ENV", "Graph", "Res", "plan_stack", "run", "run_program",
           "standin_artifacts"]


def plan_stack(stack: str, folder: Path, root: Path = ROOT) -> Graph:
    """``root/Pulumi.<stack>.yaml`` through the real program under its cloud's mocks,
    every function given a tiny zip written in ``folder`` (nothing is packaged)."""
    artifact = Path(folder) / "function.zip"
    with zipfile.ZipFile(artifact, "w") as zf:
        zf.writestr("runtimes/__init__.py", "")
    return plan_program(stack, root, artifact=artifact)
