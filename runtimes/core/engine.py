"""The engine: decoded chunks -> transform chain -> sink in batches -> dead-letter.

Invariant (tested as a property): for every object processed,

    received + fanned_out == written + dropped + dead_lettered

and no record is both written and dead-lettered. Whole objects: a folder placeholder (a
key ending in ``/`` with no bytes) is skipped (``skipped_objects``); an object that can
never be decoded (format unknown, not gzip under a gzip name) becomes one dead-letter
entry for the object (``undecodable_objects``) and is acknowledged.

Every record written carries ``_headwater_id``: a stable id from the object (bucket, key,
version), the input line and the fan-out index, so a warehouse can de-duplicate rows that
a redelivery wrote twice. With a :class:`Checkpoint`, a redelivered object resumes after
the records the sink already accepted. What cannot be accounted for this way
raises, so the invocation fails and the platform redelivers: a sink that is down after
every retry, a dead-letter that cannot be written, a transform raising ``Retryable``.

The per-record path is a plain loop over a list per step: no per-record objects, no
per-record logging, so the engine stays close to a hand-written orjson loop.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from transforms.contract import Context, Retryable, Source

from .formats import Bad, Chunk, DecodeError, decode, prepend

__all__ = [
    "ID_FIELD",
    "Checkpoint",
    "Counters",
    "DeadLetterSink",
    "Engine",
    "Failure",
    "RetryPolicy",
    "Sink",
    "SinkUnavailable",
    "Step",
]


@dataclass(slots=True)
class Failure:
    """One record a sink did not take: its index in the batch passed to ``write``."""

    index: int
    error_type: str
    message: str
    retryable: bool = True


class Sink(Protocol):
    """Where transformed records go. ``write`` returns the records it did not take."""

    max_batch: int

    def write(self, records: list[dict[str, Any]]) -> Sequence[Failure]: ...


class DeadLetterSink(Protocol):
    def write(self, pipeline: str, bucket: str, key: str, entries: list[dict[str, Any]]) -> None:
        """Persist dead-letter entries for one source object; raise if it cannot."""


class SinkUnavailable(RuntimeError):
    """The sink refused whole batches after every retry: the invocation must fail."""


@dataclass
class RetryPolicy:
    """Capped exponential backoff with full jitter (delay = U(0, min(cap, base * 2**n)))."""

    max_attempts: int = 5
    base_s: float = 0.05
    cap_s: float = 2.0
    sleep: Callable[[float], None] = time.sleep
    rand: Callable[[], float] = random.random

    def delay(self, attempt: int) -> float:
        return min(self.cap_s, self.base_s * (2 ** attempt)) * self.rand()


ID_FIELD = "_headwater_id"


def object_id(bucket: str, key: str, version: str | None) -> str:
    """A short stable id of one version of one object (the head of every row id)."""
    import hashlib

    return hashlib.sha256(f"{bucket}\0{key}\0{version or ''}".encode()).hexdigest()[:20]


@dataclass
class Checkpoint:
    """How far an object got: ``outputs`` records settled at the sink (written or
    dead-lettered there) and ``entries`` decode/transform dead-letter entries already
    persisted. Both sequences are deterministic for one object version and chain, so a
    redelivery skips exactly what was done."""

    outputs: int = 0
    entries: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"outputs": self.outputs, "entries": self.entries}

    @classmethod
    def of(cls, doc: Mapping[str, Any] | None) -> Checkpoint | None:
        if not doc:
            return None
        return cls(int(doc.get("outputs", 0)), int(doc.get("entries", 0)))


@dataclass
class Counters:
    received: int = 0
    written: int = 0
    dropped: int = 0
    dead_lettered: int = 0
    fanned_out: int = 0
    retries: int = 0
    seconds: float = 0.0
    skipped_objects: int = 0  # folder placeholders
    undecodable_objects: int = 0  # dead-lettered as a whole
    resumed_outputs: int = 0  # skipped on resume: the sink had them from an earlier attempt
    sink_seconds: float = 0.0  # time spent in sink writes (the sink's latency)

    def add(self, other: Counters) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    def balanced(self) -> bool:
        return self.received + self.fanned_out == self.written + self.dropped + self.dead_lettered


@dataclass(slots=True)
class Step:
    index: int
    name: str
    fn: Callable[[dict[str, Any], Context], Any]
    batch: Callable[[list[dict[str, Any]], Context], list[Any]] | None = None

    @classmethod
    def of(cls, index: int, name: str, fn: Any) -> Step:
        return cls(index, name, fn, getattr(fn, "batch", None))


def _text(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    return raw.decode("utf-8", "backslashreplace")


@dataclass
class _Object:
    """Per-object state: where records came from and what is to be dead-lettered."""

    bucket: str
    key: str
    version: str | None = None
    deadletters: list[dict[str, Any]] = field(default_factory=list)
    id_head: str = ""
    last_line: int = -1
    fan_index: int = 0
    # resume / checkpoint state
    skip_outputs: int = 0
    skip_entries: int = 0
    outputs: int = 0  # outputs settled so far (incl. skipped ones)
    entries: int = 0  # decode/transform entries produced so far (incl. skipped ones)
    persisted: int = 0  # entries of ``deadletters`` already written


class Engine:
    """Runs one pipeline's chain over objects. Build once per container, reuse per object."""

    def __init__(
        self,
        pipeline: str,
        steps: Sequence[Step],
        sink: Sink,
        deadletter: DeadLetterSink,
        ctx: Context | None = None,
        *,
        retry: RetryPolicy | None = None,
        fmt: str = "",
        compression: str = "auto",
        csv_delimiter: str = ",",
        clock: Callable[[], float] = time.perf_counter,
        stamp_ids: bool = False,
    ) -> None:
        self.pipeline = pipeline
        self.steps = list(steps)
        self._segments = _segments(self.steps)  # the chain's shape is fixed: plan it once
        self.sink = sink
        self.deadletter = deadletter
        self.ctx = ctx or Context(pipeline=pipeline)
        self.ctx.pipeline = pipeline
        self.retry = retry or RetryPolicy()
        self.fmt = fmt
        self.compression = compression
        self.csv_delimiter = csv_delimiter
        self.clock = clock
        self.stamp_ids = stamp_ids

    # -- entry points ---------------------------------------------------------------

    def process_object(self, stream: IO[bytes], key: str, bucket: str = "",
                       version: str | None = None, *, resume: Checkpoint | None = None,
                       checkpoint: Callable[[Checkpoint], None] | None = None) -> Counters:
        """Decode ``stream`` (the object at ``bucket/key``, of ``version``) and run it
        through the chain.

        ``checkpoint(Checkpoint)`` is called after each batch the sink settled (pending
        dead-letter entries are persisted first); ``resume`` skips what an earlier attempt
        settled. Read errors of ``stream`` propagate: the platform redelivers.
        """
        if key.endswith("/"):
            head = stream.read(1)
            if not head:
                return Counters(skipped_objects=1)
            stream = prepend(head, stream)
        try:
            chunks = decode(stream, self.fmt, key, self.compression,
                            csv_delimiter=self.csv_delimiter)
        except DecodeError as exc:
            obj = _Object(bucket, key, version)
            e = self._entry(obj, 0, "object", type(exc).__name__, str(exc))
            # raises when it cannot write: the platform redelivers, nothing is lost
            self.deadletter.write(self.pipeline, bucket, key, [e])
            return Counters(undecodable_objects=1)
        return self.process_chunks(chunks, key, bucket, version, resume=resume,
                                   checkpoint=checkpoint)

    def process_records(self, records: Iterable[Mapping[str, Any]], key: str = "",
                        bucket: str = "") -> Counters:
        """Run already-decoded records (tests, benchmarks, push-style sources)."""
        chunk = Chunk()
        for n, rec in enumerate(records, 1):
            chunk.records.append(dict(rec))
            chunk.lines.append(n)
        return self.process_chunks([chunk], key, bucket)

    def process_chunks(self, chunks: Iterable[Chunk], key: str, bucket: str = "",
                       version: str | None = None, *, resume: Checkpoint | None = None,
                       checkpoint: Callable[[Checkpoint], None] | None = None) -> Counters:
        started = self.clock()
        c = Counters()
        obj = _Object(bucket, key, version, id_head=object_id(bucket, key, version))
        if resume is not None:
            obj.skip_outputs, obj.skip_entries = resume.outputs, resume.entries
        self.ctx.source = Source(bucket, key, 0)
        pending: list[dict[str, Any]] = []
        pending_lines: list[int] = []
        max_batch = max(1, int(getattr(self.sink, "max_batch", 500)))
        for chunk in chunks:
            c.received += len(chunk.records) + len(chunk.bad)
            for bad in chunk.bad:
                self._dead_bad(obj, bad)
            c.dead_lettered += len(chunk.bad)
            if not chunk.records:
                continue
            out, lines = self._chain(chunk, obj, c)
            pending.extend(out)
            pending_lines.extend(lines)
            while len(pending) >= max_batch:
                self._settle(pending[:max_batch], pending_lines[:max_batch], obj, c,
                             checkpoint)
                del pending[:max_batch]
                del pending_lines[:max_batch]
        if pending:
            self._settle(pending, pending_lines, obj, c, None)
        self._persist(obj)
        if checkpoint is not None:  # all settled: a redelivery before "done" writes nothing
            checkpoint(Checkpoint(obj.outputs, obj.entries))
        c.seconds = self.clock() - started
        return c

    def _persist(self, obj: _Object) -> None:
        """Write the dead-letter entries not written yet (raises when it cannot: the
        platform redelivers, nothing is lost)."""
        todo = obj.deadletters[obj.persisted:]
        if todo:
            self.deadletter.write(self.pipeline, obj.bucket, obj.key, todo)
            obj.persisted = len(obj.deadletters)

    def _settle(self, batch: list[dict], lines: list[int], obj: _Object, c: Counters,
                checkpoint: Callable[[Checkpoint], None] | None) -> None:
        """Stamp ids, skip what a resumed object already settled, flush the rest, then
        checkpoint."""
        if self.stamp_ids:
            head = obj.id_head
            for rec, line in zip(batch, lines, strict=True):
                if line == obj.last_line:
                    obj.fan_index += 1
                else:
                    obj.last_line, obj.fan_index = line, 0
                rec[ID_FIELD] = f"{head}-{line}-{obj.fan_index}"
        skip = min(len(batch), max(0, obj.skip_outputs - obj.outputs))
        obj.outputs += len(batch)
        if skip:
            c.resumed_outputs += skip
            batch, lines = batch[skip:], lines[skip:]
        if batch:
            self._flush(batch, lines, obj, c)
        if checkpoint is not None:
            self._persist(obj)
            checkpoint(Checkpoint(obj.outputs, obj.entries))

    # -- chain ----------------------------------------------------------------------

    def _chain(self, chunk: Chunk, obj: _Object, c: Counters) -> tuple[list[dict], list[int]]:
        records, lines = chunk.records, chunk.lines
        raws = chunk.raws
        for batch_step, pairs in self._segments:
            if not records:
                break
            if batch_step is not None:
                records, lines, raws = self._batch_step(batch_step, records, lines, raws, obj, c)
            else:
                records, lines, raws = self._record_steps(pairs, records, lines, raws, obj, c)
        return records, lines

    def _record_steps(self, pairs: list[tuple[Step, Callable, list]], records: list[dict],
                      lines: list[int], raws: list[bytes] | None, obj: _Object, c: Counters
                      ) -> tuple[list[dict], list[int], list[bytes] | None]:
        """Run consecutive per-record steps record by record (one pass, not one per step).

        ``pairs`` holds (step, fn, steps after it in this run); a record that fans out
        runs the steps after the one that fanned out, each produced record in turn.
        """
        ctx = self.ctx
        source = ctx.source
        out: list[dict[str, Any]] = []
        out_lines: list[int] = []
        out_raws: list[bytes] | None = [] if raws is not None else None
        append = out.append
        append_line = out_lines.append
        for i, rec in enumerate(records):
            line = lines[i]
            source.line = line
            for step, fn, rest in pairs:
                try:
                    r = fn(rec, ctx)
                except Retryable:
                    raise
                except Exception as exc:
                    self._dead(obj, step, rec, line, raws[i] if raws else None, exc)
                    c.dead_lettered += 1
                    break
                if type(r) is dict or isinstance(r, dict):  # fast path first
                    rec = r
                elif r is None:
                    c.dropped += 1
                    break
                else:
                    raw = raws[i] if raws else None
                    many: list[dict[str, Any]] = []
                    many_lines: list[int] = []
                    many_raws: list[bytes] | None = [] if raws is not None else None
                    n = self._fan_out(step, rec, r, line, raw, many, many_lines, many_raws,
                                      obj, c)
                    c.fanned_out += n - 1
                    if rest and many:
                        many, many_lines, many_raws = self._record_steps(
                            rest, many, many_lines, many_raws, obj, c)
                    out.extend(many)
                    out_lines.extend(many_lines)
                    if out_raws is not None:
                        out_raws.extend(many_raws)  # type: ignore[arg-type]
                    break
            else:
                append(rec)
                append_line(line)
                if out_raws is not None:
                    out_raws.append(raws[i])  # type: ignore[index]
        return out, out_lines, out_raws

    def _batch_step(self, step: Step, records: list[dict], lines: list[int],
                    raws: list[bytes] | None, obj: _Object, c: Counters
                    ) -> tuple[list[dict], list[int], list[bytes] | None]:
        out: list[dict[str, Any]] = []
        out_lines: list[int] = []
        out_raws: list[bytes] | None = [] if raws is not None else None
        results = self._batch_results(step, records, lines, raws, obj, c)
        for i, rec in enumerate(records):
            r = results[i]
            if r is _FAILED:
                continue
            if type(r) is dict or isinstance(r, dict):  # fast path first
                out.append(r)
                out_lines.append(lines[i])
                if out_raws is not None:
                    out_raws.append(raws[i])  # type: ignore[index]
            elif r is None:
                c.dropped += 1
            else:
                n = self._fan_out(step, rec, r, lines[i], raws[i] if raws else None,
                                  out, out_lines, out_raws, obj, c)
                c.fanned_out += n - 1
        return out, out_lines, out_raws

    def _batch_results(self, step: Step, records: list[dict], lines: list[int],
                       raws: list[bytes] | None, obj: _Object, c: Counters) -> list[Any]:
        try:
            results = step.batch(records, self.ctx)  # type: ignore[misc]
        except Retryable:
            raise
        except Exception as exc:
            # the whole batch failed: each record goes to the dead-letter with the cause
            results = [exc] * len(records)
        else:
            if len(results) != len(records):
                err = RuntimeError(f"step {step.index} ({step.name}): batch returned "
                                   f"{len(results)} results for {len(records)} records")
                results = [err] * len(records)
        for i, r in enumerate(results):
            if isinstance(r, BaseException):
                self._dead(obj, step, records[i], lines[i], raws[i] if raws else None, r)
                c.dead_lettered += 1
                results[i] = _FAILED
        return results

    def _fan_out(self, step: Step, rec: dict, result: Any, line: int, raw: bytes | None,
                 out: list, out_lines: list, out_raws: list | None, obj: _Object,
                 c: Counters) -> int:
        try:
            produced = list(result)
            bad = next((x for x in produced if type(x) is not dict and not isinstance(x, dict)), None)
            if bad is not None:
                raise TypeError(f"transform returned {type(bad).__name__}, expected dict, "
                                "None or an iterable of dicts")
        except Retryable:
            raise
        except Exception as exc:
            self._dead(obj, step, rec, line, raw, exc)
            c.dead_lettered += 1
            return 1  # the input record is accounted for by its dead-letter
        if not produced:
            c.dropped += 1
            return 1
        for x in produced:
            out.append(x)
            out_lines.append(line)
            if out_raws is not None:
                out_raws.append(raw)
        return len(produced)

    # -- sink -----------------------------------------------------------------------

    def _flush(self, batch: list[dict], lines: list[int], obj: _Object, c: Counters) -> None:
        """Write a batch; retry the failed subset only; dead-letter what still fails."""
        todo = list(range(len(batch)))
        attempt = 0
        while todo:
            subset = [batch[i] for i in todo]
            sent = self.clock()
            try:
                failures = self.sink.write(subset)
            except Retryable as exc:
                failures = [Failure(j, type(exc).__name__, str(exc)) for j in range(len(subset))]
                whole = exc
            except Exception as exc:
                failures = [Failure(j, type(exc).__name__, str(exc)) for j in range(len(subset))]
                whole = exc
            else:
                whole = None
            c.sink_seconds += self.clock() - sent
            failed = {}
            for f in failures:
                failed[todo[f.index]] = f
            c.written += len(todo) - len(failed)
            final = {i: f for i, f in failed.items() if not f.retryable}
            retry = [i for i in todo if i in failed and i not in final]
            for i, f in final.items():
                self._dead_sink(obj, batch[i], lines[i], f, attempt + 1)
                c.dead_lettered += 1
            if not retry:
                return
            attempt += 1
            if attempt >= self.retry.max_attempts:
                if whole is not None and len(retry) == len(todo):
                    raise SinkUnavailable(
                        f"pipeline {self.pipeline!r}: sink failed {attempt} times for "
                        f"{len(retry)} records of {obj.key!r}: {type(whole).__name__}: {whole}"
                    ) from whole
                for i in retry:
                    self._dead_sink(obj, batch[i], lines[i], failed[i], attempt)
                    c.dead_lettered += 1
                return
            c.retries += len(retry)
            self.retry.sleep(self.retry.delay(attempt - 1))
            todo = retry

    # -- dead-letter entries ----------------------------------------------------------

    def _entry(self, obj: _Object, line: int, step: str, error_type: str, message: str) -> dict:
        return {
            "pipeline": self.pipeline,
            "source": {"bucket": obj.bucket, "key": obj.key,
                       **({"version": obj.version} if obj.version else {})},
            "line": line,
            "step": step,
            "error_type": error_type,
            "message": message,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def _keep(self, obj: _Object, e: dict[str, Any]) -> None:
        """Keep a decode/transform entry unless a resumed attempt already persisted it."""
        obj.entries += 1
        if obj.entries > obj.skip_entries:
            obj.deadletters.append(e)

    def _dead(self, obj: _Object, step: Step, rec: dict, line: int, raw: bytes | None,
              exc: BaseException) -> None:
        e = self._entry(obj, line, f"{step.index}:{step.name}", type(exc).__name__, str(exc))
        e["record"] = rec
        if raw is not None:
            e["raw"] = _text(raw)
        self._keep(obj, e)

    def _dead_bad(self, obj: _Object, bad: Bad) -> None:
        e = self._entry(obj, bad.line, "decode", bad.error_type, bad.message)
        e["offset"] = bad.offset
        e["raw"] = _text(bad.raw)
        try:
            bad.raw.decode("utf-8")
        except UnicodeDecodeError:  # keep the exact bytes too, so a replay loses nothing
            import base64

            e["raw_b64"] = base64.b64encode(bad.raw).decode("ascii")
        self._keep(obj, e)

    def _dead_sink(self, obj: _Object, rec: dict, line: int, f: Failure, attempts: int) -> None:
        e = self._entry(obj, line, "sink", f.error_type, f.message)
        e["attempts"] = attempts
        e["record"] = rec
        obj.deadletters.append(e)


_FAILED = object()


def _segments(steps: Sequence[Step]) -> list[tuple[Step | None, list[tuple[Step, Callable, list]]]]:
    """Split the chain into runs of per-record steps and single batch steps.

    A run of per-record steps is applied record by record in one pass: a chain of three
    small steps then costs one loop over the chunk instead of three, with the same
    results, counters and dead-letter entries (listed in record order).
    """
    out: list[tuple[Step | None, list[tuple[Step, Callable, list]]]] = []
    run: list[Step] = []

    def close() -> None:
        if run:
            pairs: list[tuple[Step, Callable, list]] = []
            for step in reversed(run):
                pairs.insert(0, (step, step.fn, list(pairs)))
            out.append((None, pairs))
            run.clear()

    for step in steps:
        if step.batch is None:
            run.append(step)
        else:
            close()
            out.append((step, []))
    close()
    return out
