"""RESULTS.md: headline, targets, one table per figure, machine and versions."""

from __future__ import annotations

import time

from ._common import VERSIONS, Config, Figure, machine, version

ENGINE_CHANGES = """\
## Engine changes made from these measurements

Profiling figure 1 (cProfile) showed the engine's own bookkeeping costing about as much
as the work: a loop, three list appends and a line lookup per step and record, a
per-line decode loop, and Decimal arithmetic for every float amount. Three
behaviour-preserving changes, each its own commit, the unit tests green after each:

1. `runtimes/core/engine.py`: consecutive per-record steps run record by record in one pass
   over a chunk instead of one pass per step (batch steps such as `enrich` still see the
   whole chunk). Same results and counters; a chunk's dead-letter entries are now listed
   in record order.
2. `transforms/builtins/cents.py`: a float whose shortest repr has at most `scale`
   decimals becomes integer text straight from that repr (`19.99` -> `1999`); values that
   need rounding, exponents, NaN and infinity still go through `Decimal`. Exactly the
   same results (checked against `to_cents` on 100,000+ values and every scale).
3. `runtimes/core/formats.py`: ndjson lines are decoded a chunk's worth at a time with one
   `map(orjson.loads)` when every line is an object; a piece with a blank, bad,
   non-object or oversize line goes line by line as before.

{before_after}
Profiling figure 10 (cProfile of `headwater run`) later showed the runner's stop check
(`runtimes/local/runner.py`, `_Stoppable`) hiding the DuckDB sink's `write_table`: the
columnar path's Arrow tables were turned back into dicts and converted to Arrow again.
Passing them through took figure 10 from 0.78x to 0.89x the naive script (1.35 to 1.24
CPU s for the whole process).
"""

BEFORE_AFTER = """\
Before / after, measured once when the changes were made (not by every run): figure 1's
chain on 200,000 records, CPU time, three runs of each tree alternated, each run three
interleaved rounds, medians of the runs. Absolute rates are this shared machine's and
drift with its load; the ratios are what count.

| tree | headwater records/s | headwater / orjson floor | headwater / naive (exact) |
|---|---|---|---|
| before (e45d9da) | {b_hw} | {b_floor} | {b_naive} |
| after (these changes) | {a_hw} | {a_floor} | {a_naive} |
"""


def _table(headers: list[str], rows: list[list[str]]) -> str:
    def esc(x: str) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(map(esc, headers)) + " |",
           "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    return "\n".join(out)


def _mark(met: bool | None) -> str:
    return {True: "met", False: "NOT MET", None: "not measured"}[met]


def render(figures: list[Figure], cfg: Config, started: float, seconds: float,
           before_after: str = "") -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started))
    parts = ["# headwater benchmarks", ""]
    parts.append(f"Written by `make bench` (`python -m benchmarks{' --quick' if cfg.quick else ''}`)"
                 f" on {when}; the run took {seconds:.0f} s."
                 + (" **Quick run: sizes scaled down, numbers are a smoke test only.**"
                    if cfg.quick else ""))
    parts.append("")
    parts.append("These machines are shared and noisy: absolute times drift with load. Each "
                 "comparison runs its contenders interleaved (A B C A B C ...) in one process "
                 "and reports medians; throughput uses this process's CPU time, and ratios are "
                 "taken per round before the median.")
    head = next((f for f in figures if f.number == 1 and not f.not_measured), None)
    if head is not None:
        h = head.headline
        parts += ["", "**Headline (figure 1):** headwater processes records "
                  f"{h['naive']:.2f}x as fast as a naive hand-written handler (stdlib json, exact "
                  f"cents), {h['powertools']:.2f}x as fast as Powertools' BatchProcessor, and at "
                  f"{h['floor']:.2f}x the speed of the orjson hand-written floor."]
    parts += ["", "## Targets", ""]
    rows = []
    for f in figures:
        for t in f.targets:
            rows.append([str(f.number), t.name, _mark(t.met), t.detail])
    parts.append(_table(["figure", "target", "status", "measured"], rows))
    misses = [n for f in figures for n in getattr(f, "misses", [])]
    if misses:
        parts += ["", "Where a target is missed:", ""] + [f"- {m}" for m in misses]
    for f in figures:
        parts += ["", f"## Figure {f.number}: {f.title}", ""]
        if f.not_measured:
            parts.append(f"not measured: {f.not_measured}")
            continue
        parts.append(_table(f.headers, f.rows))
        for note in f.notes:
            parts += ["", note]
        parts += ["", f"({f.seconds:.0f} s)"]
    parts += ["", ENGINE_CHANGES.format(before_after=before_after or BEFORE_AFTER_TEXT)]
    parts += ["## Machine", ""]
    parts.append(_table(["", ""], [[k, v] for k, v in machine().items()]))
    parts += ["", "## Versions", ""]
    parts.append(_table(["distribution", "version"], [[d, version(d)] for d in VERSIONS]))
    return "\n".join(parts).rstrip() + "\n"


BEFORE_AFTER_TEXT = BEFORE_AFTER.format(  # measured once, when the changes were made
    b_hw="137,568", b_floor="0.55x", b_naive="1.98x",
    a_hw="193,810", a_floor="0.82x", a_naive="2.32x")
