"""The Pulumi-program harness for tests: :mod:`headwater.program` (re-exported here)."""

from headwater.program import ARTIFACT_STANDIN_ENV, Graph, Res, run, run_program, standin_artifacts

__all__ = ["ARTIFACT_STANDIN_ENV", "Graph", "Res", "run", "run_program", "standin_artifacts"]
