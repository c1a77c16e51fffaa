"""Figure 3: peak RSS while the engine processes a large ndjson.gz object from a file.

Each size is processed in a fresh interpreter (``python -m benchmarks.memory FILE``), which
reports ``ru_maxrss`` after its imports and after the object. The chain is figure 1's; the
sink serializes each batch to NDJSON as a real sink would and keeps only a count, so what
is measured is the engine's own footprint, not an accumulating result.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import data
from ._common import ROOT, Config, Figure, Target


class CountingSink:
    """Serializes each batch like a real sink (orjson NDJSON), keeps only the counts."""

    max_batch = 500

    def __init__(self) -> None:
        self.records = 0
        self.bytes = 0

    def write(self, records: list[dict[str, Any]]) -> list:
        from runtimes.core.codec import dumps

        self.bytes += len(b"\n".join(map(dumps, records))) + 1
        self.records += len(records)
        return []


def _rss_mb() -> float:
    """Peak RSS of this process so far (MB).

    ``VmHWM`` where Linux has it: ``ru_maxrss`` of a child carries over the parent's peak
    across fork and exec, so a child started by a large runner would report the runner's.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(path: str) -> None:
    from headwater.testing.doubles import MemoryDeadLetter
    from runtimes.core.engine import Engine

    from .throughput import headwater_chain

    chain = headwater_chain(enrich=False)
    baseline = _rss_mb()
    sink = CountingSink()
    engine = Engine("orders", chain, sink, MemoryDeadLetter(), fmt="ndjson")
    t0 = time.perf_counter()
    with open(path, "rb") as f:
        c = engine.process_object(f, Path(path).name)
    print(json.dumps({"baseline_mb": baseline, "peak_mb": _rss_mb(), "records": c.received,
                      "written": c.written, "seconds": time.perf_counter() - t0}))


def figure_memory(cfg: Config) -> Figure:
    fig = Figure(3, "Memory: peak RSS processing a generated ndjson.gz object from a local "
                    "file (fresh interpreter per size)")
    fig.headers = ["uncompressed input", "gzip file", "records", "RSS after imports (MB)",
                   "peak RSS (MB)", "peak / smallest input's peak", "engine seconds"]
    peaks = []
    for mb in cfg.memory_mb:
        path = cfg.workdir / f"orders-{mb}mb.ndjson.gz"
        raw = data.write_gz(path, mb * 1_000_000)
        proc = subprocess.run([sys.executable, "-m", "benchmarks.memory", str(path)],
                              cwd=ROOT, capture_output=True, text=True, timeout=1200)
        if proc.returncode != 0:
            raise RuntimeError(f"memory child failed for {mb} MB: {proc.stderr[-2000:]}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        if r["written"] != r["records"]:
            raise RuntimeError(f"memory child did not write every record: {r}")
        peaks.append(r["peak_mb"])
        fig.rows.append([f"{raw / 1e6:.0f} MB", f"{path.stat().st_size / 1e6:.0f} MB",
                         f"{r['records']:,}", f"{r['baseline_mb']:.0f}", f"{r['peak_mb']:.0f}",
                         f"{r['peak_mb'] / peaks[0]:.2f}x", f"{r['seconds']:.1f}"])
        path.unlink()
    fig.notes.append("RSS after imports includes the plan-time modules (pydantic, the "
                     "registry) used to build the chain from its spec in the child; the "
                     "growth from there to the peak is what processing the object costs.")
    ratio = peaks[-1] / peaks[0]
    fig.targets.append(Target(f"flat memory: {cfg.memory_mb[-1]} MB input peak RSS within 1.5x "
                              f"of the {cfg.memory_mb[0]} MB input's", ratio <= 1.5,
                              f"{ratio:.2f}x ({peaks[0]:.0f} -> {peaks[-1]:.0f} MB)"))
    return fig


if __name__ == "__main__":
    child(sys.argv[1])
