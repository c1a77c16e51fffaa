"""Writes the bad-input corpus (``tests/corpus/objects/``) deterministically.

Run ``python tests/corpus/make_corpus.py`` after changing it; the files are committed, and
``manifest.json`` beside them says what each must yield (see ``test_corpus.py``). Files
whose content is easier to read as code than as bytes are made here: gzip variants, UTF-16,
the 5 MB line, Parquet files.
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "objects"


def line(i: int, **extra: object) -> bytes:
    rec = {"order_id": str(i), "user_id": f"u{i % 3 + 1}", "value": 1.5 + i, **extra}
    return json.dumps(rec).encode() + b"\n"


GOOD3 = b"".join(line(i) for i in (1, 2, 3))


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def parquet(rows: list[dict]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf, compression="NONE")
    return buf.getvalue()


def files() -> dict[str, bytes]:
    big = b'{"order_id": "big", "pad": "' + b"x" * (5 * 1024 * 1024) + b'"}\n'
    huge = b'{"order_id": "huge", "pad": "' + b"x" * (9 * 1024 * 1024) + b'"}\n'
    truncated = gz(b"".join(line(i) for i in range(1, 201)))
    truncated = truncated[: len(truncated) // 2]
    deep = b'{"order_id": "deep", "a": ' + b"[" * 5000 + b"]" * 5000 + b"}\n"
    nested = b'{"order_id": "nested", "a": ' + b'{"b": ' * 200 + b"1" + b"}" * 200 + b"}\n"
    return {
        "zero_bytes.ndjson": b"",
        "gzip_of_empty.ndjson.gz": gz(b""),
        "truncated.ndjson.gz": truncated,
        "plain_text_named_gz.ndjson.gz": GOOD3,
        "gzip_without_gz_suffix.ndjson": gz(GOOD3),
        "gzip_two_members.ndjson.gz": gz(line(1)) + gz(line(2) + line(3)),
        "gzip_zero_padding.ndjson.gz": gz(GOOD3) + b"\0" * 512,
        "gzip_garbage_after.ndjson.gz": gz(GOOD3) + b"garbage after the member",
        "bom.ndjson": b"\xef\xbb\xbf" + GOOD3,
        "bom.csv": b"\xef\xbb\xbforder_id,user_id,value\n1,u1,2.5\n2,u2,3.5\n",
        "utf16le_bom.ndjson": "\ufeff".encode("utf-16-le") + GOOD3.decode().encode("utf-16-le"),
        "utf16le_bom.csv": ("\ufeff" + "order_id,user_id\n1,u1\n2,u2\n").encode("utf-16-le"),
        "invalid_utf8_one_line.ndjson": line(1) + b'{"order_id": "2", "name": "caf\xe9"}\n' + line(3),
        "invalid_utf8_one_row.csv": b"order_id,name\n1,ok\n2,caf\xe9\n3,fine\n",
        "crlf.ndjson": GOOD3.replace(b"\n", b"\r\n"),
        "crlf.csv": b"order_id,user_id\r\n1,u1\r\n2,u2\r\n",
        "cr_only.csv": b"order_id,user_id\r1,u1\r2,u2\r",
        "five_mb_line.ndjson.gz": gz(line(1) + big + line(3)),
        "nine_mb_line.ndjson.gz": gz(line(1) + huge + line(3)),
        "duplicate_keys.ndjson": b'{"order_id": "1", "value": 1, "value": 2}\n',
        "nan_infinity.ndjson": (line(1) + b'{"order_id": "2", "value": NaN}\n'
                                b'{"order_id": "3", "value": Infinity}\n'
                                b'{"order_id": "4", "value": -Infinity}\n'),
        "nan_infinity.csv": b"order_id,value\n1,NaN\n2,Infinity\n",
        "float_overflow.ndjson": b'{"order_id": "1", "value": 1e400}\n' + line(2),
        "deep_nesting.ndjson": deep + line(2),
        "moderate_nesting.ndjson": nested,
        "big_integers.ndjson": (b'{"order_id": "1", "id": 123456789012345678901234567890}\n'
                                b'{"order_id": "2", "id": 18446744073709551616}\n'
                                b'{"order_id": "3", "id": -9223372036854775809}\n'
                                b'{"order_id": "4", "id": "123456789012345678901234567890"}\n'),
        "big_integers.json": b'[{"order_id": "1", "id": 123456789012345678901234567890}]',
        "ragged.csv": b"order_id,user_id,value\n1,u1,2\n2,u2\n3,u3,4,extra\n4,u1,5\n",
        "quoted_newlines.csv": b'order_id,note\n1,"two\nlines"\n2,"say ""hi"""\n3,"a,b"\n',
        "unclosed_quote.csv": b'order_id,note\n1,ok\n2,"never closed\n3,lost?\n',
        "header_only.csv": b"order_id,user_id\n",
        "duplicate_header.csv": b"id,id,id_2\n1,2,3\n",
        "invalid_utf8_header.csv": b"order_id,caf\xe9\n1,a\n2,b\n",
        "nul_bytes.ndjson": line(1) + b'{"order_id": "2"}\x00\n' + line(3),
        "blank_lines.ndjson": b"\n\n" + line(1) + b"   \n\n" + line(2) + b"\n",
        "no_trailing_newline.ndjson": GOOD3.rstrip(b"\n"),
        "scalars_and_arrays.ndjson": line(1) + b"42\n[1, 2]\nnull\n\"text\"\n" + line(2),
        "lone_surrogate.ndjson": b'{"order_id": "1", "s": "\\ud800"}\n' + line(2),
        "array.json": b"[" + b",".join(line(i).strip() for i in (1, 2, 3)) + b"]",
        "array_unclosed.json": b"[" + line(1).strip() + b"," + line(2).strip() + b',{"order_id": "3"',
        "array_scalars.json": b"[" + line(1).strip() + b", 7, null, " + line(2).strip() + b"]",
        "array_empty_element.json": b"[" + line(1).strip() + b",," + line(2).strip() + b"]",
        "empty_array.json": b"[]",
        "single_object.json": line(1),
        "wrong_content_csv_in_json.json": b"order_id,user_id\n1,u1\n",
        "html_error_page.ndjson": b"<html>\n<body>503 Service Unavailable</body>\n</html>\n",
        "png_named_ndjson.ndjson": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01",
        "unknown_suffix.txt": GOOD3,
        "ok.parquet": parquet([{"order_id": "1", "user_id": "u1", "value": 2.5},
                               {"order_id": "2", "user_id": "u2", "value": 3.5}]),
        "other_schema.parquet": parquet([{"sku": "A1", "qty": 2}, {"sku": "B2", "qty": 1}]),
        "corrupt.parquet": parquet([{"order_id": "1"}])[:-20] + b"PAR1",
        "key with spaces é+1.ndjson": GOOD3,
        "folder/": b"",
    }


def _sqs(*bodies: str, source: str = "aws:sqs") -> dict:
    return {"Records": [{"messageId": f"m{n}", "receiptHandle": f"r{n}", "body": body,
                         "attributes": {"ApproximateReceiveCount": "1"},
                         "eventSource": source, "awsRegion": "eu-west-1",
                         "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:orders"}
                        for n, body in enumerate(bodies)]}


def _s3(key: str, event: str = "ObjectCreated:Put") -> dict:
    return {"eventSource": "aws:s3", "eventName": event, "s3": {
        "bucket": {"name": "raw-bucket"}, "object": {"key": key, "size": 10, "eTag": "e1"}}}


def _push(attrs: dict, data: str = "") -> dict:
    return {"message": {"data": data, "attributes": attrs, "messageId": "42"},
            "subscription": "projects/p/subscriptions/s", "deliveryAttempt": 1}


def _gcs(name: str, event: str = "OBJECT_FINALIZE") -> dict:
    return {"eventType": event, "bucketId": "raw-bucket", "objectId": name,
            "objectGeneration": "1714564800000001", "payloadFormat": "JSON_API_V1"}


def _grid(event_type: str, blob: str = "raw/orders/a.ndjson", url: str | None = None) -> dict:
    return {"topic": "/subscriptions/x/resourceGroups/g/providers/Microsoft.Storage/"
                     "storageAccounts/acct",
            "subject": f"/blobServices/default/containers/raw/blobs/{blob}",
            "eventType": event_type, "eventTime": "2024-05-01T10:00:00Z", "id": "ev-1",
            "data": {"api": "PutBlob", "eTag": "0x8DC1", "contentLength": 10,
                     "url": url or f"https://acct.blob.core.windows.net/raw/{blob}"},
            "dataVersion": "", "metadataVersion": "1"}


def events() -> dict[str, object]:
    """Event bodies as the platforms send them, well-formed and not."""
    s3_put = json.dumps({"Records": [_s3("raw/orders/a.ndjson")]})
    deep = "[" * 100_000 + "]" * 100_000
    return {
        # AWS: a Lambda SQS event (the whole invocation's input)
        "aws/s3_test_event.json": _sqs(json.dumps({"Service": "Amazon S3",
                                                   "Event": "s3:TestEvent",
                                                   "Bucket": "raw-bucket"})),
        "aws/object_removed.json": _sqs(json.dumps({"Records": [
            _s3("raw/orders/a.ndjson", "ObjectRemoved:Delete")]})),
        "aws/key_spaces_unicode_plus.json": _sqs(json.dumps({"Records": [
            _s3("raw/orders/my+file+%C3%A9t%C3%A9+%2B1.ndjson")]})),
        "aws/folder_marker.json": _sqs(json.dumps({"Records": [_s3("raw/")]})),
        "aws/sns_wrapped.json": _sqs(json.dumps({"Type": "Notification", "Message": s3_put})),
        "aws/eventbridge_deleted.json": _sqs(json.dumps({
            "source": "aws.s3", "detail-type": "Object Deleted",
            "detail": {"bucket": {"name": "raw-bucket"}, "object": {"key": "raw/a b.ndjson"}}})),
        "aws/body_not_json.json": _sqs("<xml>not json</xml>", s3_put),
        "aws/body_deep_nesting.json": _sqs(deep),
        "aws/body_empty_records.json": _sqs(json.dumps({"Records": []})),
        "aws/body_record_without_key.json": _sqs(json.dumps({"Records": [
            {"eventSource": "aws:s3", "s3": {"bucket": {"name": "b"}, "object": {}}}]})),
        "aws/not_from_sqs.json": _sqs(s3_put, source="aws:kinesis"),
        "aws/event_without_records.json": {"detail": {}},
        # GCP: an HTTP request to the function (headers and body)
        "gcp/finalize.json": {"headers": {}, "body": _push(_gcs("raw/orders/a.ndjson"))},
        "gcp/delete.json": {"headers": {}, "body": _push(_gcs("raw/orders/a.ndjson",
                                                              "OBJECT_DELETE"))},
        "gcp/key_spaces_unicode_plus.json": {"headers": {}, "body": _push(
            _gcs("raw/orders/my file été +1.ndjson"))},
        "gcp/folder_marker.json": {"headers": {}, "body": _push(_gcs("raw/"))},
        "gcp/bad_base64.json": {"headers": {}, "body": _push(_gcs("raw/a.ndjson"), "%%%")},
        "gcp/payload_not_json.json": {"headers": {}, "body": _push(
            _gcs("raw/a.ndjson"), "bm90IGpzb24=")},
        "gcp/missing_attributes.json": {"headers": {}, "body": _push({"eventType": "X"})},
        "gcp/cloudevent_storage_binary.json": {
            "headers": {"ce-type": "google.cloud.storage.object.v1.finalized", "ce-id": "7"},
            "body": {"bucket": "raw-bucket", "name": "raw/orders/a.ndjson",
                     "generation": "3"}},
        "gcp/cloudevent_unknown_type.json": {
            "headers": {"ce-type": "google.cloud.audit.log.v1.written", "ce-id": "8"},
            "body": {}},
        "gcp/wrong_content_type.json": {"headers": {"content-type": "text/plain"},
                                        "body": "hello"},
        "gcp/deep_nesting.json": {"headers": {}, "body": deep},
        # Azure: one Event Hub event's body (Event Grid schema: an array)
        "azure/validation.json": [_grid("Microsoft.EventGrid.SubscriptionValidationEvent")],
        "azure/blob_deleted.json": [_grid("Microsoft.Storage.BlobDeleted")],
        "azure/blob_created.json": [_grid("Microsoft.Storage.BlobCreated")],
        "azure/key_spaces_unicode_plus.json": [_grid(
            "Microsoft.Storage.BlobCreated", "raw/orders/my file été +1.ndjson",
            "https://acct.blob.core.windows.net/raw/raw/orders/my%20file%20%C3%A9t%C3%A9"
            "%20%2B1.ndjson")],
        "azure/folder_marker.json": [_grid("Microsoft.Storage.BlobCreated", "raw/")],
        "azure/empty_array.json": [],
        "azure/subject_without_blob.json": [{**_grid("Microsoft.Storage.BlobCreated"),
                                             "subject": "/blobServices/default/containers/raw"}],
        "azure/not_an_event.json": [{"hello": "world"}],
        "azure/not_json.json": "<html>502 Bad Gateway</html>",
        "azure/deep_nesting.json": deep,
    }


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, data in files().items():
        if name.endswith("/"):
            continue  # a folder marker is a key, not a file: the test builds it
        (OUT / name).write_bytes(data)
    for name, doc in events().items():
        path = HERE / "events" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        # a string is a raw body as sent (not JSON); anything else is the JSON document
        path.write_text(doc if isinstance(doc, str) else json.dumps(doc, indent=1,
                                                                     ensure_ascii=False) + "\n",
                        encoding="utf-8")
    print(f"wrote {len(files())} corpus objects and {len(events())} events under {HERE}")


if __name__ == "__main__":
    main()
