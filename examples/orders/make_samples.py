"""Write the sample objects of the ``local`` stack (Pulumi.local.yaml) into this folder.

    python examples/orders/make_samples.py

The output is committed; rerun this after changing it. The files are byte-reproducible
(gzip with a fixed mtime, parquet without a creation timestamp). Every format the
decoders read appears once, and a few records are broken on purpose so that the
dead-letter has something to show:

- ``raw/orders/2024-05-01.ndjson``: a line that is not JSON (-> ``decode``)
- ``raw/orders/2024-05-02.json``: a value that is not a number (-> ``1:cents``)
- ``raw/orders/2024-05-03.csv``: a user_id missing from the lookup table (-> ``3:enrich``)
- ``raw/orders/2024-05-04.ndjson.gz``: a line that is not UTF-8 (-> ``decode``)
- ``raw/orders/2024-05-05.parquet``: all good
- ``raw/signups/2024-05-01.csv``: a row with too few fields (-> ``decode``)
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent

USERS = [
    ("u1", "gold", "DE"), ("u2", "silver", "FR"), ("u3", "bronze", "US"), ("u4", "gold", "GB"),
    ("u5", "silver", "NL"), ("u6", "bronze", "SE"), ("u7", "gold", "JP"), ("u8", "silver", "CA"),
]


def order(n: int, user: str, value, category: str, day: int, hour: int) -> dict:
    return {"order_id": f"o-{n}", "user_id": user, "value": value, "category": category,
            "ts": f"2024-05-{day:02d}T{hour:02d}:15:00Z"}


def ndjson(records: list[dict]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def write(rel: str, data: bytes) -> None:
    path = HERE / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    print(f"wrote {rel} ({len(data)} bytes)")


def main() -> None:
    # 2024-05-01.ndjson: 6 orders and one line that is not JSON
    day1 = [order(1001, "u1", 19.99, " books ", 1, 9), order(1002, "u2", 5, "Garden", 1, 10),
            order(1003, "u3", 0.1, "toys  ", 1, 11), order(1004, "u4", 120.5, "BOOKS", 1, 12),
            order(1005, "u5", 7.25, " garden", 1, 13), order(1006, "u1", 3.33, "Toys", 1, 14)]
    lines = ndjson(day1[:3]) + b'{"order_id": "o-1099", "user_id": "u2", "value": 1.0,\n' \
        + ndjson(day1[3:])
    write("raw/orders/2024-05-01.ndjson", lines)

    # 2024-05-02.json: an array of 5 orders; one value is not a number
    day2 = [order(2001, "u6", 42.0, "electronics", 2, 8), order(2002, "u7", "12.30", " Books", 2, 9),
            order(2003, "u8", "abc", "toys", 2, 10), order(2004, "u2", 99.99, "GARDEN ", 2, 11),
            order(2005, "u3", 1, "electronics", 2, 12)]
    write("raw/orders/2024-05-02.json", json.dumps(day2, indent=1).encode() + b"\n")

    # 2024-05-03.csv: 5 orders; u99 is not in lookup/users.csv
    buf = io.StringIO()
    w = csv.DictWriter(buf, ["order_id", "user_id", "value", "category", "ts"], lineterminator="\n")
    w.writeheader()
    for r in [order(3001, "u4", "15.00", "books", 3, 9), order(3002, "u99", "8.50", "toys", 3, 10),
              order(3003, "u5", "0.99", " Garden ", 3, 11), order(3004, "u6", "250", "ELECTRONICS", 3, 12),
              order(3005, "u7", "33.10", "books", 3, 13)]:
        w.writerow(r)
    write("raw/orders/2024-05-03.csv", buf.getvalue().encode())

    # 2024-05-04.ndjson.gz: 5 orders and one line that is not UTF-8
    day4 = [order(4001, "u8", 11.11, "toys", 4, 9), order(4002, "u1", 22.22, "books", 4, 10),
            order(4003, "u2", 0.05, " garden", 4, 11), order(4004, "u3", 64, "Toys ", 4, 12),
            order(4005, "u4", 18.75, "electronics", 4, 13)]
    raw = ndjson(day4[:2]) + b'{"order_id": "o-4099", "user_id": "u5", "value": 1, ' \
        b'"category": "caf\xe9", "ts": "2024-05-04T10:30:00Z"}\n' + ndjson(day4[2:])
    write("raw/orders/2024-05-04.ndjson.gz", gzip.compress(raw, mtime=0))

    # 2024-05-05.parquet: 5 orders, ts as a real timestamp column
    import pyarrow as pa
    import pyarrow.parquet as pq

    day5 = [order(5001, "u5", 9.99, "books", 5, 9), order(5002, "u6", 45.5, "Garden", 5, 10),
            order(5003, "u7", 3.0, "toys", 5, 11), order(5004, "u8", 77.77, " electronics ", 5, 12),
            order(5005, "u1", 0.01, "BOOKS", 5, 13)]
    table = pa.table({
        "order_id": [r["order_id"] for r in day5],
        "user_id": [r["user_id"] for r in day5],
        "value": pa.array([float(r["value"]) for r in day5], pa.float64()),
        "category": [r["category"] for r in day5],
        "ts": pa.array([datetime.fromisoformat(r["ts"]).astimezone(UTC) for r in day5],
                       pa.timestamp("us", tz="UTC")),
    })
    out = io.BytesIO()
    pq.write_table(table, out, compression="snappy")
    write("raw/orders/2024-05-05.parquet", out.getvalue())

    # signups: plain CSV; one row has too few fields
    write("raw/signups/2024-05-01.csv", (
        b"email,country,plan\n"
        b"ann@example.org,de,pro\n"
        b"bob@example.org,FR,free\n"
        b"cai@example.org, us ,free\n"
        b"dee@example.org,xx,pro\n"
        b"eve@example.org\n"
        b"fay@example.org,jp,team\n"
    ))

    # the lookup table for `enrich` (key column: user_id, the step's `key` setting)
    write("lookup/users.csv", ("user_id,tier,country\n" + "".join(
        f"{u},{t},{c}\n" for u, t, c in USERS)).encode())


if __name__ == "__main__":
    main()
