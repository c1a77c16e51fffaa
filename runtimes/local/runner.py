"""``headwater run``: the pipelines of a stack over a folder, into a DuckDB file.

The folder (``root``) stands in for the bucket: every file under it is an object whose key
is its POSIX path relative to ``root``, and a pipeline takes the keys that start with its
``source.prefix`` and end with its ``source.suffix``. ``<root>/lookup/`` (lookup tables) and
``<root>/deadletter/`` (dead-letters, one folder per pipeline) are never read as objects.

Exactly once per object version: before an object is processed its sha256 is checked
against the ledger (:mod:`.ledger`); the object's rows and its ledger row are committed in
ONE DuckDB transaction. Any exception while processing an object rolls the transaction
back, so the warehouse holds all of that object's rows and its ledger row, or neither; the
object stays undone and the next run tries it again. ``reprocess=True`` processes objects
already in the ledger: their earlier rows are deleted in the same transaction first, so
the warehouse never holds an object twice. Dead-letter files are written before the
commit and are therefore at-least-once: a rolled-back object that is run again writes its
dead-letter entries again, under a new file name.

Ctrl-C (SIGINT) stops a run within moments: while :meth:`LocalRunner.run` runs in the main
thread it turns the first SIGINT into a stop request (:meth:`LocalRunner.stop`, callable
from any thread too), which the runner honours at its next read, sink write or retry
pause by raising :class:`Interrupted` out of the engine. The object in progress is rolled
back (it is not in the ledger, so the next run does it again), nothing else starts, and
``run`` returns the report of what completed with :attr:`RunReport.interrupted` set. A
second SIGINT raises ``KeyboardInterrupt`` at once, for a transform that never returns;
the transaction is rolled back all the same.
"""

from __future__ import annotations

import hashlib
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from transforms.contract import Context

from ..core.bootstrap import PipelineSettings, engine_from_manifest
from ..core.engine import Counters, Engine, Sink
from ..core.log import log
from .deadletter import FolderDeadLetter
from .duckdb_sink import DuckDBSink
from .hashing import HashingReader
from .ledger import Ledger
from .lookup import FolderLookup, env_secret

__all__ = ["Interrupted", "LocalRunner", "ObjectError", "PipelineReport", "Progress",
           "RunReport", "list_objects"]

RESERVED = ("lookup", "deadletter")


class Interrupted(KeyboardInterrupt):
    """The run was asked to stop (Ctrl-C): raised past the engine, whose ``except
    Exception`` must not dead-letter or retry records because of it."""


class PipelineNotBuilt(RuntimeError):
    """The pipeline's chain could not be resolved when its manifest was built."""


@dataclass
class ObjectError:
    pipeline: str
    key: str  # "" when the pipeline could not start at all
    error: str


@dataclass
class PipelineReport:
    name: str
    objects: int = 0  # processed and committed in this run
    skipped: int = 0  # already in the ledger
    failed: int = 0
    bytes: int = 0
    counters: Counters = field(default_factory=Counters)
    errors: list[ObjectError] = field(default_factory=list)


@dataclass
class RunReport:
    pipelines: list[PipelineReport] = field(default_factory=list)
    #: set when the run was stopped (Ctrl-C): the object then in progress, rolled back
    #: (``key`` is "" when the stop came between objects)
    interrupted: ObjectError | None = None

    @property
    def errors(self) -> list[ObjectError]:
        return [e for p in self.pipelines for e in p.errors]

    @property
    def ok(self) -> bool:
        return not self.errors and self.interrupted is None


class Progress(Protocol):
    def start(self, objects: int, total_bytes: int) -> None: ...
    def begin(self, pipeline: str, key: str, size: int) -> None: ...
    def bytes_read(self, n: int) -> None: ...
    def done(self, pipeline: str, key: str, ok: bool) -> None: ...


class _NoProgress:
    def start(self, objects: int, total_bytes: int) -> None: ...
    def begin(self, pipeline: str, key: str, size: int) -> None: ...
    def bytes_read(self, n: int) -> None: ...
    def done(self, pipeline: str, key: str, ok: bool) -> None: ...


@dataclass
class _Todo:
    key: str
    path: Path
    size: int
    sha256: str


def list_objects(root: Path) -> list[tuple[str, Path]]:
    """Every file under ``root`` as (key, path), sorted by key, without the reserved
    folders."""
    out = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        key = path.relative_to(root).as_posix()
        if key.split("/", 1)[0] in RESERVED:
            continue
        out.append((key, path))
    return sorted(out)


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class LocalRunner:
    """Runs pipelines, given as baked manifests, over ``root``.

    A manifest with an ``"error"`` (its chain could not be resolved at plan time: a plugin
    that fails to import, bad settings) fails that pipeline as a whole, with the error, and
    the other pipelines still run. :func:`headwater.local.local_runner` builds the
    manifests of a stack.
    """

    def __init__(
        self,
        manifests: Sequence[Mapping[str, Any]],
        root: str | Path,
        warehouse: str | Path,
        *,
        reprocess: bool = False,
        environ: Mapping[str, str] | None = None,
        progress: Progress | None = None,
        make_sink: Callable[[DuckDBSink], Sink] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        handle_sigint: bool = True,
        workers: int = 1,
        columnar: bool = True,
    ) -> None:
        self.manifests = list(manifests)
        self.root = Path(root)
        self.warehouse = Path(warehouse)
        self.reprocess = reprocess
        self.environ = environ
        self.progress = progress or _NoProgress()
        self.make_sink = make_sink  # wraps the DuckDB sink (fault injection in tests)
        self.sleep = sleep
        self.handle_sigint = handle_sigint
        self.workers = max(1, int(workers))  # processes decoding and transforming objects
        self.columnar = columnar  # vectorised steps on Arrow tables (same results)
        # a plain flag: a signal handler must not take locks (threading.Event does)
        self._stopping = False
        self._current: tuple[str, str] = ("", "")

    def stop(self) -> None:
        """Ask the run to stop: the object in progress is rolled back, nothing else starts."""
        self._stopping = True

    def _check(self) -> None:
        if self._stopping:
            raise Interrupted

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self._stopping:  # the second Ctrl-C: stop now, wherever the run is
            raise KeyboardInterrupt
        self.stop()

    def _pause(self, seconds: float) -> None:
        """The retry backoff, cut short by a stop request."""
        self._check()
        if self.sleep is not time.sleep:  # an injected clock (tests): one call, as asked
            self.sleep(seconds)
        else:
            end = time.monotonic() + seconds
            while (left := end - time.monotonic()) > 0:
                time.sleep(min(left, 0.05))
                self._check()
        self._check()

    def run(self) -> RunReport:
        """Run every pipeline; return the report (``interrupted`` set after Ctrl-C)."""
        if not (self.handle_sigint and threading.current_thread() is threading.main_thread()):
            return self._run()
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            return self._run()
        finally:
            signal.signal(signal.SIGINT, previous)

    def _run(self) -> RunReport:
        import duckdb

        if not self.root.is_dir():
            raise FileNotFoundError(f"root folder {self.root} does not exist")
        specs = [(m, PipelineSettings.from_manifest(m)) for m in self.manifests]
        self.warehouse.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(self.warehouse))
        try:
            ledger = Ledger(con)
            ledger.ensure()
            objects = list_objects(self.root)
            report = RunReport()
            try:
                plans = []
                for manifest, spec in specs:
                    pr = PipelineReport(spec.name)
                    report.pipelines.append(pr)
                    self._current = (spec.name, "")
                    plans.append((manifest, spec, pr, self._todo(spec, objects, ledger, pr)))
                self.progress.start(sum(len(t) for *_, t in plans),
                                    sum(o.size for *_, t in plans for o in t))
                for manifest, spec, pr, todo in plans:
                    self._current = (spec.name, "")
                    self._run_pipeline(con, ledger, manifest, spec, pr, todo)
            except KeyboardInterrupt:  # Interrupted, or a second Ctrl-C; rolled back already
                pipeline, key = self._current
                report.interrupted = ObjectError(pipeline, key, "interrupted")
            return report
        finally:
            con.close()

    def _todo(self, spec: PipelineSettings, objects: list[tuple[str, Path]], ledger: Ledger,
              pr: PipelineReport) -> list[_Todo]:
        todo = []
        for key, path in objects:
            if not spec.wants(key):
                continue
            self._check()
            sha = _sha256(path)
            if not self.reprocess and ledger.is_done(spec.name, key, sha):
                pr.skipped += 1
                continue
            todo.append(_Todo(key, path, path.stat().st_size, sha))
        return todo

    def _engine(self, con: Any, manifest: Mapping[str, Any],
                spec: PipelineSettings) -> tuple[Engine, DuckDBSink]:
        if manifest.get("error"):
            raise PipelineNotBuilt(manifest["error"])
        table = DuckDBSink(con, spec.table, spec.columns, pipeline=spec.name,
                           max_batch=spec.sink_batch)
        table.prepare()
        sink: Sink = self.make_sink(table) if self.make_sink else table
        keys = {t: key for t, key in spec.lookup_keys.items() if key}
        ctx = Context(pipeline=spec.name,
                      lookup=FolderLookup(self.root / "lookup", keys),
                      secret=env_secret(self.environ))
        engine = engine_from_manifest(manifest, sink=_Stoppable(sink, self._check), ctx=ctx,
                                      sleep=self._pause,
                                      deadletter=FolderDeadLetter(self.root / "deadletter"),
                                      columnar=self.columnar)
        return engine, table

    def _run_pipeline(self, con: Any, ledger: Ledger, manifest: Mapping[str, Any],
                      spec: PipelineSettings, pr: PipelineReport, todo: list[_Todo]) -> None:
        try:
            engine, table = self._engine(con, manifest, spec)
        except PipelineNotBuilt as exc:
            pr.errors.append(ObjectError(spec.name, "", str(exc)))
            pr.failed += len(todo)
            for o in todo:
                self.progress.done(spec.name, o.key, False)
            return
        except Exception as exc:  # bad plugin, settings or sink schema: the pipeline cannot run
            log("ERROR", "pipeline cannot start", pipeline=spec.name, exc=exc)
            pr.errors.append(ObjectError(spec.name, "", f"{type(exc).__name__}: {exc}"))
            pr.failed += len(todo)
            for o in todo:
                self.progress.done(spec.name, o.key, False)
            return
        if self._parallel(spec, todo):
            self._run_parallel(con, ledger, manifest, table, spec, pr, todo)
            return
        for o in todo:
            self._check()
            self._current = (spec.name, o.key)
            self.progress.begin(spec.name, o.key, o.size)
            try:
                c = self._process(con, ledger, engine, table, spec.name, o)
            except Exception as exc:  # the object fails as a whole; the others still run
                log("ERROR", "object not processed; it stays out of the ledger and is tried "
                    "again on the next run", pipeline=spec.name, key=o.key, exc=exc)
                pr.failed += 1
                pr.errors.append(ObjectError(spec.name, o.key, f"{type(exc).__name__}: {exc}"))
                self.progress.done(spec.name, o.key, False)
                continue
            pr.objects += 1
            pr.bytes += o.size
            pr.counters.add(c)
            self.progress.done(spec.name, o.key, True)
            self._current = (spec.name, "")

    def _parallel(self, spec: PipelineSettings, todo: list[_Todo]) -> bool:
        """Whether this pipeline's objects go to worker processes: more than one worker
        and object, declared columns (an inferred schema grows in the writer's order) and
        no sink wrapper (tests' fault injection wraps the sink of this process)."""
        return (self.workers > 1 and len(todo) > 1 and bool(spec.columns)
                and self.make_sink is None)

    def _run_parallel(self, con: Any, ledger: Ledger, manifest: Mapping[str, Any],
                      table: DuckDBSink, spec: PipelineSettings, pr: PipelineReport,
                      todo: list[_Todo]) -> None:
        """Workers decode and transform; this process commits each object, in order."""
        import multiprocessing

        from . import worker

        # spawn, not fork: this process holds a DuckDB connection and its threads
        pool = multiprocessing.get_context("spawn").Pool(
            min(self.workers, len(todo)), initializer=worker.ignore_sigint)
        try:
            pending = [pool.apply_async(worker.process_object, (
                dict(manifest), str(self.root), dict(self.environ) if self.environ is not None
                else None, o.key, str(o.path), o.sha256, self.columnar)) for o in todo]
            deadletter = FolderDeadLetter(self.root / "deadletter")
            for o, result in zip(todo, pending, strict=True):
                self._check()
                self._current = (spec.name, o.key)
                self.progress.begin(spec.name, o.key, o.size)
                while True:
                    try:
                        ok, out = result.get(timeout=0.05)
                        break
                    except multiprocessing.TimeoutError:
                        self._check()
                try:
                    if not ok:
                        raise _WorkerError(out)
                    c = self._commit(con, ledger, table, deadletter, spec.name, o, *out)
                except Exception as exc:
                    log("ERROR", "object not processed; it stays out of the ledger and is "
                        "tried again on the next run", pipeline=spec.name, key=o.key, exc=exc)
                    pr.failed += 1
                    error = str(exc) if isinstance(exc, _WorkerError) else \
                        f"{type(exc).__name__}: {exc}"
                    pr.errors.append(ObjectError(spec.name, o.key, error))
                    self.progress.done(spec.name, o.key, False)
                    continue
                self.progress.bytes_read(o.size)
                pr.objects += 1
                pr.bytes += o.size
                pr.counters.add(c)
                self.progress.done(spec.name, o.key, True)
                self._current = (spec.name, "")
        finally:
            pool.terminate()
            pool.join()

    def _commit(self, con: Any, ledger: Ledger, table: DuckDBSink,
                deadletter: FolderDeadLetter, pipeline: str, o: _Todo, c: Counters,
                writes: list[tuple[str, str, str, list[dict[str, Any]]]],
                blobs: list[bytes]) -> Counters:
        from .worker import tables

        con.execute("BEGIN TRANSACTION")
        try:
            if self.reprocess or ledger.seen(pipeline, o.key):
                table.delete_object(o.key)
            table.object_key = o.key
            for args in writes:  # before the commit, as in one process: at-least-once
                self._check()
                deadletter.write(*args)
            self._check()
            table.insert_collected(tables(blobs))
            ledger.record(pipeline, o.key, o.sha256, o.size, c)
            self._check()
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            table.forget()
            raise
        return c

    def _process(self, con: Any, ledger: Ledger, engine: Engine, table: DuckDBSink,
                 pipeline: str, o: _Todo) -> Counters:
        con.execute("BEGIN TRANSACTION")
        try:
            if self.reprocess or ledger.seen(pipeline, o.key):
                table.delete_object(o.key)
            table.object_key = o.key
            with o.path.open("rb") as f:
                reader = HashingReader(f, self._check, self.progress.bytes_read)
                c = engine.process_object(reader, o.key, str(self.root),  # type: ignore[arg-type]
                                          o.sha256)
                if reader.drain() != o.sha256:
                    raise RuntimeError(f"object {o.key!r} changed while it was being read")
            table.flush()
            ledger.record(pipeline, o.key, o.sha256, o.size, c)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            table.forget()  # columns the rolled-back batches added are gone again
            raise
        return c


class _WorkerError(RuntimeError):
    """An object failed in a worker process (the message names the original error)."""


class _Stoppable:
    """The sink, checking for a stop request before every write (of records, or of the
    columnar path's Arrow tables where the sink takes them)."""

    def __init__(self, sink: Sink, check: Callable[[], None]) -> None:
        self.sink = sink
        self.check = check
        self.max_batch = getattr(sink, "max_batch", 500)
        if hasattr(sink, "write_table"):
            self.write_table = self._write_table

    def write(self, records: list[dict[str, Any]]) -> Any:
        self.check()
        return self.sink.write(records)

    def _write_table(self, table: Any) -> Any:
        self.check()
        return self.sink.write_table(table)  # type: ignore[attr-defined]
