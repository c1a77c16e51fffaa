"""Figure 6: wall time to evaluate the Pulumi program under mocks, by pipeline count.

The program is what ``__main__.py`` runs (``components.<cloud>.deploy_stack``) with the
real ``pulumi_aws`` / ``pulumi_gcp`` SDK under ``pulumi.runtime.set_mocks``, as the unit
tests do; the mocks answer each registration with names and ids in the cloud's shapes. ``artifact_for`` returns one
prebuilt zip, so packaging is not part of the figure (figure 5 measures it).

Two measurements: in one process after a warm-up (the program alone, as the tests run
it), and a fresh interpreter per run that imports the program's modules and evaluates it
once (what a ``pulumi preview`` pays on the Python side, start-up and imports included).
A third, diagnostic row repeats the in-process run with the cyclic garbage collector off.
"""

from __future__ import annotations

import copy
import gc
import statistics
import subprocess
import sys
import time
import warnings
import zipfile
from pathlib import Path

from ._common import ROOT, Config, Figure, Target
from .artifacts import PIPELINE


def _stack(n: int, cloud: str = "aws"):
    from headwater.spec import parse_stack

    pipelines = []
    for i in range(n):
        p = copy.deepcopy(PIPELINE)
        p["name"] = f"orders{i:02d}"
        p["source"]["prefix"] = f"raw/orders{i:02d}/"
        p["sink"]["table"] = f"orders{i:02d}"
        pipelines.append(p)
    region = {"aws": "eu-west-1", "gcp": "europe-west1", "azure": "westeurope"}[cloud]
    return parse_stack({"cloud": cloud, "region": region, "pipelines": pipelines,
                        **({"arch": "x86_64"} if cloud == "azure" else {})})


def plan_once(n: int, artifact: Path, collect: bool = True,
              cloud: str = "aws") -> tuple[float, int]:
    """Evaluate the program for ``n`` pipelines on ``cloud``; (wall seconds, resources
    registered).

    ``collect=False`` turns the cyclic garbage collector off while the program runs.
    """
    import importlib

    import pulumi

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        deploy_stack = importlib.import_module(f"components.{cloud}").deploy_stack
        mocks_module = importlib.import_module(f"components.{cloud}.mocks")

    stack = _stack(n, cloud)
    mocks = {"aws": "AwsMocks", "gcp": "GcpMocks", "azure": "AzureMocks"}[cloud]
    mocks = getattr(mocks_module, mocks)()
    pulumi.runtime.settings.set_root_resource(None)
    pulumi.runtime.set_mocks(mocks, project="headwater", stack="bench", preview=True)

    @pulumi.runtime.test
    def program():
        out = deploy_stack(stack, artifact_for=lambda spec: str(artifact))
        return pulumi.Output.all(*[c.urn for c in out])

    gc.collect()
    if not collect:
        gc.disable()
    try:
        t0 = time.perf_counter()
        program()
        return time.perf_counter() - t0, mocks.count
    finally:
        gc.enable()


CHILD = """
import sys
from pathlib import Path
from benchmarks.plan import plan_once
print("@@%d" % plan_once(int(sys.argv[1]), Path(sys.argv[2]), cloud=sys.argv[3])[1])
"""


def fresh_once(n: int, artifact: Path, cloud: str = "aws") -> tuple[float, int]:
    """A new interpreter imports the program's modules and evaluates it for ``n``
    pipelines; (wall seconds of the whole process, resources registered)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, str(n), str(artifact), cloud], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"the program for {n} pipelines failed: {proc.stderr[-2000:]}")
    return wall, int(next(x[2:] for x in proc.stdout.splitlines() if x.startswith("@@")))


def profile_once(n: int, artifact: Path) -> tuple[int, float]:
    """cProfile of one in-process run: (function calls, share of the self time spent in
    headwater's components/*.py)."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    plan_once(n, artifact)
    prof.disable()
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    ours = str(ROOT / "components")
    calls = sum(v[1] for v in stats.values())
    total = sum(v[2] for v in stats.values())
    own = sum(v[2] for k, v in stats.items() if k[0].startswith(ours))
    return calls, own / total


MODES = (
    ("in-process (as the tests run it)", lambda n, a: plan_once(n, a)),
    ("fresh interpreter per run (what `pulumi preview` pays in Python)", fresh_once),
    ("diagnosis: in-process, cyclic GC off", lambda n, a: plan_once(n, a, collect=False)),
)


def figure_plan(cfg: Config) -> Figure:
    from .artifacts import built_clouds

    fig = Figure(6, "Program scaling: wall time to evaluate the Pulumi program under mocks")
    fig.headers = ["cloud", "measurement", "pipelines", "resources", "wall (ms, median)",
                   "per pipeline (ms)", "ratio to 1 pipeline"]
    artifact = cfg.workdir / "plan-function.zip"
    with zipfile.ZipFile(artifact, "w") as zf:
        zf.writestr("runtimes/aws/handler.py", "def handler(event, context):\n    return {}\n")
        zf.writestr("main.py", "def handle(request):\n    return '', 204\n")
    sizes = cfg.plan_sizes
    if "aws" not in built_clouds():
        fig.not_measured = "no cloud component is built"
        return fig
    plan_once(1, artifact)  # imports and first-use caches out of the way
    rounds = max(3, cfg.reps)
    times = {(m, n): [] for m, _ in MODES for n in sizes}
    counts: dict[int, int] = {}
    for _ in range(rounds):
        for mode, run in MODES:
            for n in sizes:
                t, counts[n] = run(n, artifact)
                times[mode, n].append(t)
    (calls_small, _), (calls_big, share) = (profile_once(n, artifact) for n in (sizes[0],
                                                                               sizes[-1]))
    top, per = {}, {}
    for mode, _ in MODES:
        one = times[mode, sizes[0]]
        for n in sizes:
            med = statistics.median(times[mode, n])
            ratio = statistics.median(a / b for a, b in zip(times[mode, n], one, strict=True))
            per[mode, n] = med * 1000 / n
            fig.rows.append(["aws", mode, str(n), str(counts[n]), f"{med * 1000:.0f}",
                             f"{per[mode, n]:.0f}", f"{ratio:.2f}x"])
        top[mode] = ratio
    big, small = sizes[-1], sizes[0]
    target = f"{big} pipelines plan in under 3x the time of one"
    inproc, fresh, nogc = (m for m, _ in MODES)
    fig.targets.append(Target(f"{target} (in-process)", top[inproc] < 3,
                              f"{top[inproc]:.2f}x"))
    fig.targets.append(Target(f"{target} (fresh interpreter)", top[fresh] < 3,
                              f"{top[fresh]:.2f}x"))
    resources = counts[small]
    if top[inproc] >= 3:
        fig.misses.append(
            f"Figure 6 in-process, {big} pipelines at {top[inproc]:.2f}x one: each pipeline is "
            f"{resources} resources, so the program registers {big}x as many, and the time of "
            "the program alone follows the number of resources: the Pulumi SDK serializes, "
            "registers and resolves each one (pulumi_aws constructors, Pulumi's asyncio/RPC "
            f"machinery; headwater's components/*.py take {share * 100:.1f} % of the self time "
            f"in a cProfile of the {big}-pipeline run). The per-pipeline time grows from "
            f"{per[inproc, small]:.0f} to {per[inproc, big]:.0f} ms while the work per pipeline "
            f"does not ({calls_small / small:,.0f} and {calls_big / big:,.0f} function calls per "
            f"pipeline in cProfile at {small} and {big}); with the cyclic garbage collector off "
            f"it is {per[nogc, small]:.0f} and {per[nogc, big]:.0f} ms ({top[nogc]:.2f}x for "
            f"{big}x): the growth is CPython's collector walking the live Pulumi object graph, "
            "which grows with every resource, not headwater code, so components/ was left as "
            f"it is. Under 3x for {big}x the resources would need the per-resource cost of the "
            "Pulumi SDK to fall, which is not ours to change.")
    if top[fresh] >= 3:
        fig.misses.append(
            f"Figure 6 fresh interpreter, {big} pipelines at {top[fresh]:.2f}x one: start-up "
            "and imports are paid once per run, and the rest is the per-resource Pulumi SDK "
            "work above.")
    else:
        fig.notes.append(
            f"Fresh interpreter: {top[fresh]:.2f}x for {big}x the pipelines, under 3x because "
            "interpreter start-up and importing pulumi, pulumi_aws and the program's modules "
            f"are paid once per run ({per[fresh, small] - per[inproc, small]:.0f} ms here, the "
            "difference between the two one-pipeline rows) and dominate a one-pipeline run.")
    built = built_clouds()
    for cloud in ("gcp", "azure"):
        if cloud not in built:
            fig.rows.append([cloud, "-", "-", "-", "not measured: this cloud is not built in "
                             "headwater yet", "-", "-"])
            continue
        plan_once(1, artifact, cloud=cloud)  # warm-up: imports, first-use caches
        runs = {n: [plan_once(n, artifact, cloud=cloud) for _ in range(rounds)] for n in sizes}
        one = [t for t, _ in runs[sizes[0]]]
        for n in sizes:
            med = statistics.median(t for t, _ in runs[n])
            ratio = statistics.median(a / b for (a, _), b in zip(runs[n], one, strict=True))
            fig.rows.append([cloud, inproc, str(n), str(runs[n][0][1]), f"{med * 1000:.0f}",
                             f"{med * 1000 / n:.0f}", f"{ratio:.2f}x"])
    order = ", ".join(map(str, sizes))
    fig.notes.append(
        f"{rounds} interleaved rounds (each measurement in turn, {order} pipelines each); the "
        f"ratio is the median over rounds of t(n) / t({small}). In-process: the program alone "
        "after a warm-up run, in the benchmark's process; wall time, since the mocks run the "
        "program's outputs on Pulumi's event loop and threads. Fresh interpreter: wall time "
        "of a whole `python -c` process that imports the program's modules and evaluates the "
        "program once under the same mocks (no Pulumi CLI or engine here, so none of their "
        "time). The GC-off row is a diagnosis, not a way to run the program.")
    return fig
