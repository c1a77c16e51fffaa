"""What ``headwater run`` shows: a rich progress bar (objects and bytes) while it works and a
summary table per pipeline at the end."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from runtimes.core.metrics import COUNTERS, dimensions
from runtimes.local.runner import RunReport

__all__ = ["RichProgress", "metrics_document", "summary_table"]


class _Amount(ProgressColumn):
    """``3/5`` for the objects bar, ``1.8/3.5 kB`` for the bytes bar."""

    def __init__(self) -> None:
        super().__init__()
        self.count = MofNCompleteColumn()
        self.size = DownloadColumn()

    def render(self, task: Any) -> Any:
        return (self.size if task.fields.get("unit") == "bytes" else self.count).render(task)


class RichProgress:
    """A :class:`runtimes.local.runner.Progress` drawing two bars: objects and bytes."""

    def __init__(self, console: Console | None = None) -> None:
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                            _Amount(), TimeElapsedColumn(),
                            console=console, transient=True)
        self.objects: Any = None
        self.bytes: Any = None

    def __enter__(self) -> RichProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def start(self, objects: int, total_bytes: int) -> None:
        self.objects = self.bar.add_task("objects", total=objects)
        self.bytes = self.bar.add_task("bytes", total=total_bytes, unit="bytes")

    def begin(self, pipeline: str, key: str, size: int) -> None:
        self.bar.update(self.objects, description=escape(f"{pipeline}: {key}"))

    def bytes_read(self, n: int) -> None:
        if n:
            self.bar.advance(self.bytes, n)

    def done(self, pipeline: str, key: str, ok: bool) -> None:
        self.bar.advance(self.objects, 1)


def summary_table(report: RunReport) -> Table:
    # two-line headers and no vertical rules: the table fits an 80-column terminal
    table = Table(title="headwater run", box=box.SIMPLE_HEAD, padding=(0, 0),
                  pad_edge=False, collapse_padding=True)
    cols = ("pipeline", "objects", "skipped", "failed", "records\nin", "written", "dropped",
            "dead-\nlettered", "retries", "secs")
    for col in cols:
        table.add_column(col, justify="left" if col == "pipeline" else "right", no_wrap=True)
    for p in report.pipelines:
        c = p.counters
        table.add_row(escape(p.name), str(p.objects), str(p.skipped),
                      f"[red]{p.failed}[/]" if p.failed else "0",
                      str(c.received), str(c.written), str(c.dropped),
                      f"[yellow]{c.dead_lettered}[/]" if c.dead_lettered else "0",
                      str(c.retries), f"{c.seconds:.2f}")
    return table


def metrics_document(report: RunReport, project: str, stack: str) -> dict[str, Any]:
    """``headwater run --metrics-json``: per pipeline, the shared metric vocabulary
    (:data:`runtimes.core.metrics.METRICS`) with the dimensions project, stack and
    pipeline, so a local run reads like one invocation of the deployed function."""
    env = {"HEADWATER_PULUMI_PROJECT": project, "HEADWATER_STACK": stack}
    out = []
    for p in report.pipelines:
        c = p.counters
        values: dict[str, float] = {"Objects": p.objects}
        values.update({name: getattr(c, field) for name, field in COUNTERS.items()})
        values["SinkSeconds"] = round(c.sink_seconds, 6)
        values["Seconds"] = round(c.seconds, 6)
        values.update({"FailedObjects": p.failed, "SkippedDone": p.skipped, "Bytes": p.bytes})
        out.append({"dimensions": dimensions(p.name, env), "metrics": values,
                    "errors": [{"key": e.key, "error": e.error} for e in p.errors]})
    return {"ok": report.ok, "pipelines": out}
