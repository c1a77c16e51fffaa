"""Run the real Pulumi program (``__main__.py``) under ``pulumi.runtime.set_mocks`` and
record every resource it registers (type, name, inputs, parent) and every stack output;
or run only its plan-time checks (:func:`check_program`), as ``headwater validate`` does.

The mocks stand in for the Pulumi engine and the cloud provider only: given mocks that
answer like the cloud (:class:`components.aws.mocks.AwsMocks` ...), the program's wiring
and its plan-time checks run exactly as under ``pulumi preview``. Works for any cloud;
the program is reached by running it, never by importing components.

Which mocks answer like the stack's cloud is the program's knowledge, not the tool's (the
tool may not import ``components``). So :func:`plan_program` runs the program under
:class:`CloudMocks`, an empty slot, and the program fills it: ``components.deploy``
calls :func:`offer_mocks` with its cloud's mocks class as soon as it knows the cloud,
before it registers anything. Outside a plan (``pulumi up``, tests that pass their own
mocks) no slot is open and :func:`offer_mocks` does nothing. A new cloud needs no change
here: its components package exports ``Mocks``.
"""

from __future__ import annotations

import json
import os
import runpy
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks

__all__ = ["ARTIFACT_STANDIN_ENV", "CHECK_ONLY_ENV", "CloudMocks", "Graph", "ProgramError",
           "Res", "check_program", "offer_mocks", "plan_program", "run", "run_program",
           "stack_config", "standin_artifacts"]

ROOT = Path(__file__).resolve().parents[1]
# A zip used for every function instead of packaging one (plans, tests): read by
# components.artifacts.
ARTIFACT_STANDIN_ENV = "HEADWATER_ARTIFACT_STANDIN"
# The program runs every plan-time check of the stack and creates nothing: read by
# components.deploy.
CHECK_ONLY_ENV = "HEADWATER_CHECK_ONLY"


class ProgramError(ValueError):
    """The Pulumi program refused the stack (a plan-time check) or failed to run."""


@dataclass
class Res:
    """One registered resource: its inputs as the provider receives them (camelCase), the
    outputs the mocks answered (inputs plus ids, ARNs, names), its URN and its parent's."""

    typ: str
    name: str
    inputs: dict[str, Any]
    parent: str = ""
    read: bool = False
    protect: bool = False
    outputs: dict[str, Any] = field(default_factory=dict)
    urn: str = ""


@dataclass
class Graph:
    resources: list[Res] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    def of(self, typ: str) -> list[Res]:
        return [r for r in self.resources if r.typ == typ]

    def one(self, typ: str, name: str) -> Res:
        found = [r for r in self.resources if r.typ == typ and r.name == name]
        assert len(found) == 1, f"{typ} {name}: {len(found)} found"
        return found[0]

    def children(self, component_name: str, component_type: str = "") -> list[Res]:
        """Resources whose parent is the component ``component_name`` (of any type, or of
        ``component_type`` such as ``headwater:aws:Pipeline``)."""
        def matches(parent: str) -> bool:
            head, _, name = parent.rpartition("::")
            typ = head.rpartition("$")[2]
            return name == component_name and (
                typ == component_type if component_type else typ.startswith("headwater:"))

        return [r for r in self.resources if matches(r.parent)]


class _Recorder(pulumi.runtime.Mocks):
    """Wraps the cloud's mocks and records each registration's inputs."""

    def __init__(self, inner: pulumi.runtime.Mocks) -> None:
        self.inner = inner
        self.resources: dict[tuple[str, str], Res] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        rid, state = self.inner.new_resource(args)
        res = self.resources.setdefault((args.typ, args.name), Res(args.typ, args.name, {}))
        res.inputs = dict(args.inputs)
        res.outputs = dict(state or {})
        res.read = bool(args.resource_id) and not args.custom
        return rid, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> Any:
        return self.inner.call(args)


class _Monitor(pulumi_mocks.MockMonitor):
    """Also records each resource's parent URN and protect flag."""

    def __init__(self, recorder: _Recorder) -> None:
        super().__init__(recorder)
        self.recorder = recorder

    def _note(self, request: Any, read: bool) -> None:
        res = self.recorder.resources.setdefault((request.type, request.name),
                                                 Res(request.type, request.name, {}))
        res.parent, res.read = request.parent, read
        res.protect = bool(getattr(request, "protect", False))
        res.urn = self.make_urn(request.parent, request.type, request.name)

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC name)
        self._note(request, read=False)
        return super().RegisterResource(request)

    def ReadResource(self, request: Any) -> Any:  # noqa: N802 (gRPC name)
        self._note(request, read=True)
        return super().ReadResource(request)


def run(program: Callable[[], Any], mocks: pulumi.runtime.Mocks, *, stack: str = "test",
        project: str = "headwater") -> Graph:
    """Run ``program`` as a Pulumi program under ``mocks``; return what it registered and
    exported. Raises what the program raises."""
    recorder = _Recorder(mocks)
    monitor = _Monitor(recorder)
    pulumi.runtime.settings.set_root_resource(None)  # a fresh stack, no earlier exports
    pulumi.runtime.set_mocks(recorder, project=project, stack=stack, preview=False,
                             monitor=monitor)
    exported: dict[str, Any] = {}

    @pulumi.runtime.test
    def wrapped() -> Any:
        program()
        # Exports land on the root stack; resolve them like the engine would.
        root = pulumi.runtime.get_root_resource()
        return pulumi.Output.from_input(dict(root.outputs)).apply(exported.update)

    wrapped()
    return Graph(list(recorder.resources.values()), exported)


@contextmanager
def standin_artifacts(path: Path | None) -> Iterator[None]:
    """Use the zip at ``path`` for every function instead of packaging (None: package)."""
    old = os.environ.get(ARTIFACT_STANDIN_ENV)
    if path is not None:
        os.environ[ARTIFACT_STANDIN_ENV] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(ARTIFACT_STANDIN_ENV, None)
        else:
            os.environ[ARTIFACT_STANDIN_ENV] = old


def run_program(config: Mapping[str, Any], mocks: pulumi.runtime.Mocks, *,
                artifact: Path | None = None, stack: str = "test",
                root: Path = ROOT) -> Graph:
    """Run ``root/__main__.py`` with stack ``config`` (``headwater:*``, ``aws:*`` ...
    keys, values as in a stack file) under ``mocks``; with ``artifact``, every function
    gets that zip instead of a packaged one."""
    cwd = Path.cwd()
    pulumi.runtime.set_all_config(
        {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()})
    try:
        os.chdir(root)
        with standin_artifacts(artifact):
            return run(lambda: runpy.run_path(str(root / "__main__.py"), run_name="__main__"),
                       mocks, stack=stack)
    finally:
        os.chdir(cwd)
        pulumi.runtime.set_all_config({})


def stack_config(path: Path) -> dict[str, Any]:
    """The ``config:`` of a stack file, as ``pulumi`` hands it to the program."""
    import yaml

    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    config = doc.get("config") or {}
    return {k: v for k, v in config.items()
            if not (isinstance(v, dict) and set(v) == {"secure"})}


class _CreatesNothing(pulumi.runtime.Mocks):
    """For a check-only run: the program must refuse or accept before creating anything."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> Any:
        return {}


def check_program(stack: str, project_dir: Path) -> None:
    """Run ``project_dir/__main__.py`` for stack ``stack`` with only its plan-time checks
    (the same ones ``pulumi preview`` runs first), offline and without credentials.
    Raises :class:`ProgramError` with the program's message when it refuses the stack."""
    main = Path(project_dir) / "__main__.py"
    if not main.is_file():
        raise ProgramError(f"no Pulumi program at {main}: run from the project folder or "
                           "pass --project-dir")
    config = stack_config(Path(project_dir) / f"Pulumi.{stack}.yaml")
    old = os.environ.get(CHECK_ONLY_ENV)
    os.environ[CHECK_ONLY_ENV] = "1"
    try:
        run_program(config, _CreatesNothing(), stack=stack, root=Path(project_dir).resolve())
    except pulumi.RunError as exc:
        raise ProgramError(str(exc)) from None
    finally:
        if old is None:
            os.environ.pop(CHECK_ONLY_ENV, None)
        else:
            os.environ[CHECK_ONLY_ENV] = old


class CloudMocks(pulumi.runtime.Mocks):
    """The slot a plan runs under until the program offers its cloud's mocks."""

    def __init__(self) -> None:
        self.inner: pulumi.runtime.Mocks | None = None

    def _mocks(self, what: str) -> pulumi.runtime.Mocks:
        if self.inner is None:
            raise ProgramError(
                f"the Pulumi program registered {what} before it named its cloud's mocks; "
                "components.deploy must call headwater.program.offer_mocks first")
        return self.inner

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        return self._mocks(f"{args.typ} {args.name!r}").new_resource(args)

    def call(self, args: pulumi.runtime.MockCallArgs) -> Any:
        return self._mocks(f"a call of {args.token}").call(args)


_slot: CloudMocks | None = None


def offer_mocks(mocks: Callable[[], pulumi.runtime.Mocks]) -> None:
    """Called by the program with its cloud's mocks class: a running plan answers with it
    from now on. Does nothing outside a plan."""
    if _slot is not None and _slot.inner is None:
        _slot.inner = mocks()


def plan_program(stack: str, project_dir: Path, *, artifact: Path) -> Graph:
    """Run ``project_dir/__main__.py`` for stack ``stack`` under the mocks of the stack's
    cloud (offered by the program), every function getting ``artifact``; offline and
    without credentials. Raises :class:`ProgramError` with the program's message when it
    refuses the stack."""
    global _slot
    main = Path(project_dir) / "__main__.py"
    if not main.is_file():
        raise ProgramError(f"no Pulumi program at {main}: run from the project folder or "
                           "pass --project-dir")
    config = stack_config(Path(project_dir) / f"Pulumi.{stack}.yaml")
    _slot = CloudMocks()
    try:
        return run_program(config, _slot, artifact=artifact, stack=stack,
                           root=Path(project_dir).resolve())
    except pulumi.RunError as exc:
        raise ProgramError(str(exc)) from None
    finally:
        _slot = None
