"""The warehouse sink on AWS: Firehose ``PutRecordBatch`` (Firehose -> S3 Parquet -> Glue).

Limits of the API, enforced here rather than discovered in production: at most 500
records and 4 MiB per call, each record at most 1,000 KiB. Every record is one JSON line
(``orjson`` + ``\\n``), so Firehose's format conversion and the S3 objects it writes keep
one record per line.

Partial failure is the normal case for Firehose: a call succeeds while some entries carry
an ``ErrorCode`` (``ServiceUnavailableException``, ``InternalFailure``). Those entries come
back as retryable :class:`~runtimes.core.engine.Failure` s and the engine retries exactly them. A
call that raises before anything of this ``write`` was accepted raises (the engine retries
the batch, then fails the invocation); a call that raises after earlier calls succeeded
reports its own entries as failed, so the accepted ones are not resent.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..core.codec import dumps
from ..core.engine import Failure
from .clients import error_code

__all__ = ["MAX_CALL_BYTES", "MAX_CALL_RECORDS", "MAX_RECORD_BYTES", "FirehoseSink"]

MAX_CALL_RECORDS = 500
MAX_CALL_BYTES = 4 * 1024 * 1024
MAX_RECORD_BYTES = 1_000 * 1024


class FirehoseSink:
    """Writes records to the delivery stream ``stream``; see the module docstring."""

    def __init__(self, client: Any, stream: str, max_batch: int = MAX_CALL_RECORDS) -> None:
        self.client = client
        self.stream = stream
        self.max_batch = max(1, min(max_batch, MAX_CALL_RECORDS))
        self.calls = 0

    def write(self, records: list[dict[str, Any]]) -> list[Failure]:
        failures: list[Failure] = []
        call: list[tuple[int, bytes]] = []
        size = 0
        accepted_before = False
        for i, rec in enumerate(records):
            data = dumps(rec) + b"\n"
            if len(data) > MAX_RECORD_BYTES:
                failures.append(Failure(i, "RecordTooLarge",
                                        f"record is {len(data)} bytes as JSON, over Firehose's "
                                        f"{MAX_RECORD_BYTES} byte limit", retryable=False))
                continue
            if call and (len(call) >= MAX_CALL_RECORDS or size + len(data) > MAX_CALL_BYTES):
                accepted_before |= self._put(call, failures, accepted_before)
                call, size = [], 0
            call.append((i, data))
            size += len(data)
        if call:
            self._put(call, failures, accepted_before)
        return failures

    def _put(self, call: list[tuple[int, bytes]], failures: list[Failure],
             accepted_before: bool) -> bool:
        """One ``PutRecordBatch``; returns whether Firehose accepted any entry."""
        self.calls += 1
        try:
            resp = self.client.put_record_batch(
                DeliveryStreamName=self.stream, Records=[{"Data": d} for _, d in call])
        except (ClientError, BotoCoreError) as exc:
            if not accepted_before:
                raise
            # earlier calls of this write were accepted: report only what was not
            code = error_code(exc)
            failures.extend(Failure(i, code or type(exc).__name__, str(exc)) for i, _ in call)
            return False
        if not resp.get("FailedPutCount"):
            return True
        answers = resp.get("RequestResponses") or []
        ok = False
        for n, (i, _) in enumerate(call):
            answer = answers[n] if n < len(answers) else {"ErrorCode": "MissingResponse"}
            code = answer.get("ErrorCode")
            if code:
                failures.append(Failure(i, code, answer.get("ErrorMessage") or code))
            else:
                ok = True
        return ok
