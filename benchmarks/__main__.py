"""``python -m benchmarks [--quick] [--out PATH] [--only 1,4] [--reps N]``

Runs every figure, prints the tables and writes them, with the machine, date and
versions, to ``benchmarks/RESULTS.md``. A figure whose subject cannot be measured here
is recorded as ``not measured: <reason>``, never with a made-up number; the exit status
is 1 when a figure failed for another reason than a missing piece.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from ._common import ROOT, Config, Figure, Target
from .report import render

FIGURES: list[tuple[int, str, str]] = [
    (1, "throughput", "figure_throughput"),
    (2, "throughput", "figure_enrichment"),
    (3, "memory", "figure_memory"),
    (4, "coldstart", "figure_coldstart"),
    (5, "artifacts", "figure_artifact"),
    (6, "plan", "figure_plan"),
    (7, "sink", "figure_sink"),
    (8, "artifacts", "figure_parquet_sizes"),
    (9, "coldstart", "figure_parquet_coldstart"),
    (10, "localrun", "figure_end_to_end"),
    (11, "localrun", "figure_columnar"),
    (12, "localrun", "figure_wide"),
    (13, "localrun", "figure_workers"),
    (14, "backfill", "figure_backfill"),
]
TITLES = {1: "Per-record throughput", 2: "Enrichment", 3: "Memory", 4: "Cold start",
          5: "Artifact", 6: "Program scaling", 7: "Sink calls", 8: "Parquet artifact",
          9: "Parquet cold start", 10: "headwater run end to end", 11: "Columnar path",
          12: "Wide record", 13: "Workers", 14: "Backfill on Spark"}


def _load(module: str, name: str) -> Callable[[Config], Figure]:
    mod = __import__(f"benchmarks.{module}", fromlist=[name])
    return getattr(mod, name)


def run(cfg: Config, only: set[int] | None = None) -> tuple[list[Figure], bool]:
    figures: list[Figure] = []
    failed = False
    for number, module, name in FIGURES:
        if only and number not in only:
            continue
        print(f"figure {number}: {TITLES[number]} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            fig = _load(module, name)(cfg)
        except ImportError as exc:  # a piece of headwater (or a peer) that is not here
            fig = Figure(number, TITLES[number], not_measured=f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            traceback.print_exc()
            failed = True
            fig = Figure(number, TITLES[number],
                         not_measured=f"the benchmark failed: {type(exc).__name__}: {exc}")
        if fig.not_measured:
            fig.targets = [Target(f"figure {number}", None, f"not measured: {fig.not_measured}")]
        fig.seconds = time.perf_counter() - t0
        figures.append(fig)
        print(f"figure {number}: {fig.seconds:.0f} s", file=sys.stderr, flush=True)
    return figures, failed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    ap.add_argument("--quick", action="store_true",
                    help="scale everything down (a smoke test; the numbers mean little)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    ap.add_argument("--only", default="", help="comma-separated figure numbers")
    ap.add_argument("--reps", type=int, default=None, help="rounds per comparison")
    args = ap.parse_args(argv)
    only = {int(x) for x in args.only.split(",") if x.strip()} or None
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="headwater-bench-") as tmp:
        cfg = Config.make(args.quick, Path(tmp), args.reps)
        figures, failed = run(cfg, only)
    text = render(figures, cfg, started, time.time() - started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    print(f"wrote {args.out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
