"""Replay dead-letter entries through the current chain (``headwater replay``).

Cloud-neutral: dead-letter files are read and moved through an :class:`ObjectStore`
(a folder locally, S3, GCS or a Blob container; each runtime has its own small port), and
records go to the runtime's own sink through an :class:`~.engine.Engine`.

Per entry:

- ``step: "<i>:<name>"`` (a transform failed): its ``record`` (as that step received it)
  runs through the chain *from that step on*;
- ``step: "decode"``: its input text (``raw_b64`` or ``raw``) is parsed as one JSON
  record again and runs through the whole chain (a CSV row cannot be: its header is not
  in the entry; it is kept, with that reason);
- ``step: "sink"``: its ``record`` (already transformed) is written to the sink again;
- ``step: "object"`` (a whole object never decoded): kept; re-drive the object itself.

Records keep the ``_headwater_id`` of their source object and line, so a replay after a
redelivery cannot add a second copy under another id. What fails again is dead-lettered
anew by the engine, with its new error. Every file replayed is moved under
``<pipeline>/_replayed/`` (``mark``), so no entry is replayed twice; an entry kept
(object, CSV decode) stays in a new file written beside the others.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from .engine import Counters, Engine
from .formats import Chunk
from .idempotency import ClaimStore, ObjectBusy, process_once

__all__ = ["ObjectStore", "ReplayReport", "deadletter_files", "replay"]

REPLAYED = "_replayed/"
SKIPPED_DIRS = ("_replayed/", "_processed/", "notifications/")
REPLAY_LEASE_S = 900.0  # a replay that stopped hard holds its file this long


class ObjectStore(Protocol):
    """The little an object store must do for replay and forget."""

    def list(self, prefix: str) -> Iterable[str]: ...
    def read(self, name: str) -> bytes: ...
    def write(self, name: str, data: bytes) -> None: ...
    def delete(self, name: str) -> None: ...


@dataclass
class ReplayReport:
    files: list[str] = field(default_factory=list)
    entries: int = 0
    replayed: int = 0  # entries run again (through the chain or to the sink)
    redriven: int = 0  # parked notifications whose whole object was run again
    kept: list[tuple[str, str]] = field(default_factory=list)  # (file, reason) not replayable
    counters: Counters = field(default_factory=Counters)

    @property
    def written(self) -> int:
        return int(self.counters.written)

    @property
    def failed_again(self) -> int:
        return int(self.counters.dead_lettered)


def deadletter_files(store: ObjectStore, prefix: str, pipeline: str,
                     since: str | None = None, suffix: str = ".ndjson") -> list[str]:
    """The pipeline's dead-letter files not replayed yet, oldest day first; ``since``
    (``YYYY-MM-DD``) keeps the days from that one on."""
    head = f"{prefix}{pipeline}/"
    out = []
    for name in store.list(head):
        rest = name[len(head):]
        if not name.endswith(suffix) or rest.startswith(SKIPPED_DIRS):
            continue
        day = rest.split("/", 1)[0].removeprefix("dt=")
        if since and day < since:
            continue
        out.append(name)
    return sorted(out)


def _input(entry: dict[str, Any]) -> tuple[int, dict[str, Any] | None, str]:
    """(first step to run, the record, why not) for one entry."""
    step = str(entry.get("step", ""))
    if step == "object":
        return 0, None, "the whole object could not be decoded: re-drive the object itself"
    if step == "sink":
        rec = entry.get("record")
        return -1, rec if isinstance(rec, dict) else None, "entry has no record"
    if step == "decode":
        raw = (base64.b64decode(entry["raw_b64"]) if entry.get("raw_b64")
               else str(entry.get("raw") or "").encode("utf-8", "surrogateescape"))
        try:
            rec = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return 0, {"__unparsed__": raw}, f"JSONDecodeError: {exc}"
        return 0, rec if isinstance(rec, dict) else {"__unparsed__": raw}, \
            f"NotAnObject: {type(rec).__name__}"
    index = step.split(":", 1)[0]
    rec = entry.get("record")
    if not index.isdigit() or not isinstance(rec, dict):
        return 0, None, f"entry of step {step!r} has no record to replay"
    return int(index), rec, ""


def replay(store: ObjectStore, prefix: str, engine: Engine, *, since: str | None = None,
           dry_run: bool = False, commit: Callable[[str], None] = lambda name: None,
           done: Callable[[str], bool] = lambda name: False,
           on_source: Callable[[str, str], None] = lambda bucket, key: None,
           claims: ClaimStore | None = None, claim_key: Callable[[str], str] = str,
           lease_s: float = REPLAY_LEASE_S) -> ReplayReport:
    """Replay the pipeline's dead-letter files (see the module docstring).

    ``commit(file)`` runs after a file's records are written and before the file is marked
    (the local runner records the file and commits its DuckDB transaction there);
    ``done(file)`` says a file was committed but not marked (a crash between the two): it is
    only marked. ``on_source(bucket, key)`` is called before the records of each source
    object are written. With ``dry_run`` nothing is written, moved or dead-lettered: the
    report says what would be replayed.

    ``claims`` (a cloud runtime's idempotency store) makes each file a claimed record
    (``claim_key(file)``, lease ``lease_s``): two replays running at once never replay one
    file both, and a file replayed but not marked (a crash between the two) is only
    marked by the next replay.
    """
    report = ReplayReport()
    pipeline = engine.pipeline
    for name in deadletter_files(store, prefix, pipeline, since):
        if not dry_run and done(name):
            mark(store, prefix, pipeline, name)
            continue
        entries = [orjson.loads(x) for x in store.read(name).splitlines() if x.strip()]
        groups, keep, kept = _plan(entries)
        if dry_run:
            _count(report, name, entries, kept, groups)
            continue

        def work(resume: Any, checkpoint: Any, groups=groups, keep=keep, name=name) -> Counters:
            counters = _write(engine, groups, keep, on_source)
            commit(name)
            return counters

        try:
            counters = process_once(claims, claim_key(name), lease_s, work, what=name,
                                    deadletter_file=name)
        except ObjectBusy:
            report.kept.append((name, "being replayed by another run (or by one that "
                                f"stopped within the last {lease_s:.0f} s): replay later"))
            continue
        if counters is not None:  # None: replayed before, not marked yet
            _count(report, name, entries, kept, groups)
            report.counters.add(counters)
        mark(store, prefix, pipeline, name)
    return report


_Groups = dict[tuple[int, str, str, str | None], Chunk]


def _plan(entries: list[dict[str, Any]]) -> tuple[_Groups, list[dict[str, Any]], list[str]]:
    """The replayable records grouped by (first step, source object), the entries kept
    (with a new error where they are still not a record) and why each was kept."""
    groups: _Groups = {}
    keep: list[dict[str, Any]] = []
    kept: list[str] = []
    for e in entries:
        start, rec, why = _input(e)
        if rec is None or "__unparsed__" in rec:
            if rec is not None and "__unparsed__" in rec:
                # still not a record: dead-lettered again, with the new error
                e = {**e, "message": why, "error_type": why.split(":", 1)[0]}
            keep.append(e)
            kept.append(why)
            continue
        src = e.get("source") or {}
        k = (start, str(src.get("bucket", "")), str(src.get("key", "")), src.get("version"))
        chunk = groups.setdefault(k, Chunk())
        chunk.records.append(rec)
        chunk.lines.append(int(e.get("line") or 0))
    return groups, keep, kept


def _count(report: ReplayReport, name: str, entries: list[Any], kept: list[str],
           groups: _Groups) -> None:
    report.files.append(name)
    report.entries += len(entries)
    report.kept.extend((name, why) for why in kept)
    report.replayed += sum(len(c.records) for c in groups.values())


def _write(engine: Engine, groups: _Groups, keep: list[dict[str, Any]],
           on_source: Callable[[str, str], None]) -> Counters:
    """Run each group from its step into the sink; dead-letter anew what is kept."""
    counters = Counters()
    for (start, bucket, key, version), chunk in groups.items():
        sub = _from_step(engine, engine.steps, start)
        on_source(bucket, key)
        counters.add(sub.process_chunks([chunk], key, bucket, version))
    if keep:
        engine.deadletter.write(engine.pipeline, "", "replay", keep)
    return counters


def _from_step(engine: Engine, steps: Sequence[Any], start: int) -> Engine:
    """The engine with the chain from step ``start`` on (``-1``: no steps, sink only)."""
    rest = [] if start < 0 else [s for s in steps if s.index >= start]
    return Engine(engine.pipeline, rest, engine.sink, engine.deadletter, engine.ctx,
                  retry=engine.retry, stamp_ids=engine.stamp_ids)


def mark(store: ObjectStore, prefix: str, pipeline: str, name: str) -> str:
    """Move a replayed file under ``<pipeline>/_replayed/`` (copy, then delete)."""
    head = f"{prefix}{pipeline}/"
    target = head + REPLAYED + name[len(head):]
    store.write(target, store.read(name))
    store.delete(name)
    return target
