"""The warehouse sink on GCP: BigQuery streaming inserts (``tabledata.insertAll``) through
google-cloud-bigquery's ``insert_rows_json``.

Limits of the API, enforced here: at most 500 rows per request (Google's recommendation)
and a 10 MB HTTP request; a row is at most 9 MiB as JSON. Each row's ``insertId`` is its
``_headwater_id`` (stable per object generation, line and fan-out index), so a redelivered
notification's rows are dropped by BigQuery's best-effort de-duplication, and the
table's ``<table>_dedup`` view removes what slips through.

``insertErrors`` name rows by index: ``invalid`` / ``invalid_value``-style reasons are
final (the row goes to the dead-letter with BigQuery's message and location); ``stopped``
(rows not inserted because another row of the request was invalid) and server-side reasons
are retried, alone. A request that raises before anything of this ``write`` was accepted
raises (the engine retries, then fails the request so Pub/Sub redelivers); one that
raises after earlier requests succeeded reports only its own rows as failed.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..core.codec import dumps
from ..core.engine import Failure

__all__ = ["MAX_CALL_BYTES", "MAX_CALL_ROWS", "MAX_ROW_BYTES", "BigQuerySink"]

MAX_CALL_ROWS = 500
MAX_CALL_BYTES = 9 * 1024 * 1024  # under the 10 MB request limit, with room for the envelope
MAX_ROW_BYTES = MAX_CALL_BYTES
ID_FIELD = "_headwater_id"
# reasons that name the row itself: retrying the same row can only fail again
FINAL_REASONS = frozenset({"invalid", "invalidQuery", "notFound", "accessDenied"})
REQUEST_TIMEOUT_S = 60.0
RETRY_DEADLINE_S = 120.0


class BigQuerySink:
    """Streams records into ``table`` (``project.dataset.table``); see the module docstring."""

    def __init__(self, client: Any, table: str, max_batch: int = MAX_CALL_ROWS) -> None:
        self.client = client
        self.table = table
        self.max_batch = max(1, min(max_batch, MAX_CALL_ROWS))
        self.calls = 0
        self._retry: Any = None

    def write(self, records: list[dict[str, Any]]) -> list[Failure]:
        failures: list[Failure] = []
        call: list[tuple[int, dict[str, Any]]] = []
        size = 0
        accepted_before = False
        for i, rec in enumerate(records):
            data = dumps(rec)
            if len(data) > MAX_ROW_BYTES:
                failures.append(Failure(i, "RowTooLarge", f"row is {len(data)} bytes as JSON, "
                                        f"over the {MAX_ROW_BYTES} byte limit", retryable=False))
                continue
            if call and (len(call) >= MAX_CALL_ROWS or size + len(data) > MAX_CALL_BYTES):
                accepted_before |= self._insert(call, failures, accepted_before)
                call, size = [], 0
            # a JSON-native copy: the client's json.dumps knows no datetime or Decimal
            call.append((i, orjson.loads(data)))
            size += len(data) + 64
        if call:
            self._insert(call, failures, accepted_before)
        return failures

    def _insert(self, call: list[tuple[int, dict[str, Any]]], failures: list[Failure],
                accepted_before: bool) -> bool:
        """One ``insertAll``; returns whether BigQuery took any row of it."""
        from google.api_core.exceptions import GoogleAPIError

        self.calls += 1
        rows = [r for _, r in call]
        ids: Any = [r.get(ID_FIELD) for r in rows]
        if not all(ids):  # without stable ids, at least the client's own retries de-duplicate
            from google.cloud.bigquery import AutoRowIDs

            ids = AutoRowIDs.GENERATE_UUID
        try:
            errors = self.client.insert_rows_json(
                self.table, rows, row_ids=ids,
                ignore_unknown_values=True, skip_invalid_rows=False,
                retry=self._retry_policy(), timeout=REQUEST_TIMEOUT_S)
        except GoogleAPIError as exc:
            if not accepted_before:
                raise
            failures.extend(Failure(i, type(exc).__name__, str(exc)) for i, _ in call)
            return False
        if not errors:
            return True
        failed = set()
        for err in errors:
            n = err.get("index")
            if not isinstance(n, int) or not 0 <= n < len(call):
                continue
            reasons = err.get("errors") or [{"reason": "unknown", "message": "no detail"}]
            final = next((e for e in reasons if e.get("reason") in FINAL_REASONS), None)
            first = final or reasons[0]
            where = f" (field {first['location']})" if first.get("location") else ""
            failures.append(Failure(call[n][0], str(first.get("reason") or "insertError"),
                                    f"{first.get('message') or 'rejected'}{where}",
                                    retryable=final is None))
            failed.add(n)
        return len(failed) < len(call)

    def _retry_policy(self) -> Any:
        if self._retry is None:
            from google.cloud.bigquery import DEFAULT_RETRY

            # transient HTTP errors are retried by the client, within a bound the request
            # timeout can afford; insertIds make those retries safe
            self._retry = DEFAULT_RETRY.with_deadline(RETRY_DEADLINE_S)
        return self._retry
