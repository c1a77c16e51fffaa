"""The fault-injection matrix: one row per (runtime, cell), the invariant checked per row,
and the table printed at the end of the run and written to ``docs/reliability.md``.

A row counts records by their ``order_id`` (unique per input record), never by the
engine's own bookkeeping: records in == distinct records in the sink + records
dead-lettered (with an entry saying why) + records held by the platform for redelivery
(a message in the SQS DLQ, a parked notification), and nothing lost. ``duplicates`` is the
number of extra rows in the sink's storage; every such row must carry the same
``_headwater_id`` as its original (so the warehouse's de-dup on it removes it).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

CELLS = {
    "partial": "sink rejects some records (partial failure)",
    "throttle": "sink throttles (429/503), then accepts",
    "sink-down": "sink down for the whole invocation, then redelivered",
    "read-reset": "object read fails midway (connection reset after N bytes)",
    "killed": "function killed after writing half a batch; message redelivered",
    "duplicate": "same notification delivered twice, concurrently",
    "overwritten": "object overwritten between notification and read",
    "fail-after-partial": "function fails after the sink accepted part of the object; redelivered",
    "poison": "poison object fails every time (DLQ / dead-letter after the attempts)",
    "lookup-timeout": "enrichment store times out, then answers",
}
RUNTIMES = ["local", "aws", "gcp", "azure"]
DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"


@dataclass
class Row:
    runtime: str
    cell: str
    records_in: int = 0
    in_sink: int = 0
    dead_lettered: int = 0
    held: int = 0
    duplicates: int = 0
    lost: int = 0
    note: str = ""
    real: bool = True


def _file() -> Path | None:
    name = os.environ.get("HEADWATER_MATRIX_FILE")
    return Path(name) if name else None


def _save(row: Row) -> Row:
    path = _file()
    if path is not None:
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(asdict(row)) + "\n")
    return row


def record(runtime: str, cell: str, *, records_in: Iterable[str], sink: list[dict[str, Any]],
           deadletters: list[dict[str, Any]], held: Iterable[str] = (), note: str = "",
           at_least_once: bool = False) -> Row:
    """Check the invariant for one cell and keep its row.

    ``sink``: every row the sink's storage holds (duplicates included); ``deadletters``:
    every dead-letter entry (each must carry the record or its raw text, and say why);
    ``held``: order ids of records the platform holds for redelivery.
    ``at_least_once``: the sink may hold a resent row (Firehose, Event Hubs); it must then
    carry its original's ``_headwater_id``.
    """
    assert cell in CELLS and runtime in RUNTIMES
    wanted = list(records_in)
    assert len(wanted) == len(set(wanted))
    in_sink = Counter(str(r["order_id"]) for r in sink)
    by_id = Counter(r.get("_headwater_id") for r in sink)
    dead: set[str] = set()
    for e in deadletters:
        assert e.get("error_type") and e.get("message"), f"entry without a reason: {e}"
        rec = e.get("record")
        if isinstance(rec, dict) and "order_id" in rec:
            dead.add(str(rec["order_id"]))
        else:
            raw = e.get("raw") or ""
            dead.update(o for o in wanted if f'"order_id": "{o}"' in raw)
    held_ids = set(held)
    accounted = set(in_sink) | dead | held_ids
    lost = [o for o in wanted if o not in accounted]
    extra_rows = sum(n - 1 for n in in_sink.values())
    row = Row(runtime, cell, len(wanted), len(in_sink), len(dead - set(in_sink)),
              len(held_ids - set(in_sink) - dead), extra_rows, len(lost), note)
    _save(row)
    assert not lost, f"{runtime}/{cell}: lost {lost}"
    assert not (set(in_sink) & dead), f"{runtime}/{cell}: both written and dead-lettered: " \
        f"{sorted(set(in_sink) & dead)}"
    assert set(in_sink) <= set(wanted) and dead <= set(wanted)
    if at_least_once:
        # a resent row is its original again: same id, so the de-dup removes it
        assert len(by_id) == len(in_sink), f"{runtime}/{cell}: resent rows with new ids"
    else:
        assert extra_rows == 0, f"{runtime}/{cell}: {extra_rows} duplicate rows"
    return row


def not_real(runtime: str, cell: str, reason: str) -> Row:
    """A cell that cannot be made real here: in the table with its reason, never faked."""
    return _save(Row(runtime, cell, note=reason, real=False))


def load(path: Path) -> list[Row]:
    if not path.exists():
        return []
    return [Row(**json.loads(x)) for x in path.read_text(encoding="utf-8").splitlines() if x]


def table(rows: list[Row]) -> str:
    """The matrix as a Markdown table, ordered by runtime then cell."""
    order = {c: n for n, c in enumerate(CELLS)}
    rows = sorted(rows, key=lambda r: (RUNTIMES.index(r.runtime), order[r.cell]))
    out = ["| runtime | cell | records in | in sink | dead-lettered | held for redelivery "
           "| duplicate rows | lost | how |",
           "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if not r.real:
            out.append(f"| {r.runtime} | {r.cell} | – | – | – | – | – | – | "
                       f"not run here: {r.note} |")
            continue
        out.append(f"| {r.runtime} | {r.cell} | {r.records_in} | {r.in_sink} | "
                   f"{r.dead_lettered} | {r.held} | {r.duplicates} | {r.lost} | {r.note} |")
    return "\n".join(out)


def complete(rows: list[Row]) -> bool:
    """Every cell of every runtime that has a column ran (a partial run never rewrites
    the page)."""
    present = {r.runtime for r in rows}
    return {(r.runtime, r.cell) for r in rows} >= {(rt, c) for rt in present for c in CELLS}


def missing(rows: list[Row]) -> str:
    absent = [rt for rt in RUNTIMES if rt not in {r.runtime for r in rows}]
    if not absent:
        return ""
    return (f"\n\nNo column yet for: {', '.join(absent)} (their end-to-end tests under "
            "`tests/e2e/` cover single faults; the matrix cells for them are not written).")


def write_doc(rows: list[Row]) -> None:
    cells = "\n".join(f"- **{k}**: {v}" for k, v in CELLS.items())
    lost = sum(r.lost for r in rows)
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(f"""# Reliability: the fault-injection matrix

Generated by `tests/reliability/` (`make test` runs it and prints the table; `make
reliability-doc` rewrites this page). Every cell runs the orders pipeline on the runtime
named, against its emulator, with one fault injected, and checks the promise:

> every record ends in the warehouse, in the dead-letter with its reason, or the platform
> holds it for redelivery; nothing is lost, nothing is written twice under two ids.

Columns: *records in* (distinct input records, counted by `order_id`), *in sink*
(distinct records in the warehouse's storage), *dead-lettered* (entries that carry the
record and say why), *held for redelivery* (a message in the SQS DLQ, a notification on
the Pub/Sub dead-letter topic, a notification parked in the dead-letter container, an
object the local runner leaves unprocessed), *duplicate rows* (extra copies in the storage:
each carries its original's `_headwater_id`, so `<table>_dedup`, the de-duplicating view
(a function on Data Explorer) every cloud stack creates, shows one row for them), *lost*.

Cells:

{cells}

Lost records over all cells: **{lost}**.{missing(rows)}

{table(rows)}

## What the runtimes are tested against

- local: `headwater run`'s runner into a DuckDB file, faults injected at its sink, reader
  and lookup; "redelivery" is the next run (the object stays out of the ledger).
- aws: the Lambda handler on a moto server (S3, SQS with a redrive DLQ, DynamoDB,
  Firehose into S3); faults at the boto3 client boundary (Firehose `PutRecordBatch`,
  DynamoDB `BatchGetItem`, the S3 response stream); a kill is a real SIGKILL of a forked
  process running the handler; SQS redelivery is the queue's own (visibility, receive
  count, redrive to the DLQ). Firehose has no idempotent write: a kill between its
  accepting a batch and the checkpoint resends that batch on redelivery, with the same
  `_headwater_id`s: the Athena view `<table>_dedup` (a Glue view, one row per id) hides
  them.
- gcp: the Cloud Function's entry point served by the real functions-framework app,
  given the Pub/Sub push bodies of GCS notifications, on gcp-storage-emulator (objects,
  dead-letter bucket) and the Firestore emulator (users lookup, the idempotency
  collection with its checkpoints); the real google-cloud-bigquery client writes to a
  stand-in for BigQuery at its REST boundary (`insertAll` with insertErrors, HTTP
  429/503/403; no BigQuery emulator runs here). *in sink* counts every row the stand-in
  accepted before its insertId de-duplication (BigQuery's is best effort). Pub/Sub's
  redelivery is the same push posted again up to the subscription's
  `max_delivery_attempts`; the poison cell runs through the Pub/Sub emulator's own push
  subscription and dead-letter policy (backoff shortened to 0-1 s). A kill is a real
  SIGKILL of a separate Python process running the function (gRPC clients do not survive
  a fork).
- azure: the real `function_app` called with `azure.functions.EventHubEvent`s carrying
  Event Grid BlobCreated notifications, on Azurite (blobs, dead-letter container, users
  and claims tables); the processed Event Hub is a stand-in at the client boundary
  (`create_batch`/`send_batch` with real `EventDataBatch`es; no Event Hubs emulator runs
  here), so *in sink* is every event the hub accepted. The host's retry policy is the
  batch run again with the function's retry context; the Event Hub trigger moves its
  checkpoint even after the last retry fails, so the function parks what still fails
  in the dead-letter container on its last attempt: *held for redelivery* for Azure
  means such a parked notification, with its error, which replay runs again. Event Hubs
  takes or refuses whole batches, so its partial refusal is the per-event size limit.
  Kills and concurrent invocations are forked processes.
""", encoding="utf-8")
