"""What every figure shares: interleaved timing, medians, the figure record, machine facts."""

from __future__ import annotations

import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Config:
    """Sizes of one run; ``quick`` scales everything down for a smoke test."""

    quick: bool = False
    reps: int = 5
    records: int = 200_000
    memory_mb: tuple[int, ...] = (50, 200, 500)
    plan_sizes: tuple[int, ...] = (1, 5, 20)
    sink_records: int = 10_000
    coldstart_reps: int = 7
    workdir: Path = field(default_factory=lambda: Path("."))

    @classmethod
    def make(cls, quick: bool, workdir: Path, reps: int | None = None) -> Config:
        if quick:
            return cls(quick=True, reps=reps or 2, records=5_000, memory_mb=(1, 2, 5),
                       plan_sizes=(1, 2, 4), sink_records=2_000, coldstart_reps=2,
                       workdir=workdir)
        return cls(reps=reps or 5, workdir=workdir)


@dataclass
class Target:
    name: str
    met: bool | None  # None: not measured
    detail: str


@dataclass
class Figure:
    """One figure of RESULTS.md: a table, what was measured, and the targets it decides."""

    number: int
    title: str
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    not_measured: str = ""
    seconds: float = 0.0
    misses: list[str] = field(default_factory=list)  # why a target is missed, what remains
    headline: dict[str, float] = field(default_factory=dict)


def interleaved(contenders: Sequence[tuple[str, Callable[[], Any]]], reps: int
                ) -> dict[str, list[float]]:
    """Run A B C A B C ... ``reps`` times; CPU seconds of this process per contender per round.

    Interleaving puts every contender under the same background load in each round, and
    CPU time (not wall time) leaves out the time other processes on a shared machine take
    from this one, so the ratios between contenders mean more than absolute times.
    """
    times: dict[str, list[float]] = {name: [] for name, _ in contenders}
    for _ in range(reps):
        for name, fn in contenders:
            gc.collect()
            t0 = time.process_time()
            fn()
            times[name].append(time.process_time() - t0)
    return times


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def round_ratios(num: list[float], den: list[float]) -> float:
    """Median over rounds of num[i] / den[i] (rounds run back to back, so load is shared)."""
    return statistics.median(n / d for n, d in zip(num, den, strict=True))


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "unknown"
    return {
        "CPUs (nproc)": str(os.cpu_count()),
        "CPU model": cpu,
        "memory": mem,
        "load average at start (1, 5, 15 min)": load,
        "OS": platform.platform(),
        "Python": sys.version.split()[0] + f" ({platform.python_implementation()})",
    }


VERSIONS = ("headwater", "orjson", "aws-lambda-powertools", "boto3", "pulumi", "pulumi-aws",
            "moto")


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def fmt_x(x: float) -> str:
    return f"{x:.2f}x"
