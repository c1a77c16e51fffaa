"""Generated order records in the shape of the example objects.

``{"order_id": "o-0000001", "user_id": "u-00042", "value": 12.5, "category": "books"}``,
about 80 bytes a line. One value in ten has a third decimal ending in 5 (a unit price
times a quantity, say): exact half-up cents and ``round(float(v) * 100)`` disagree on
many of those, which is what the inexact contender shows.
"""

from __future__ import annotations

import gzip
import random
from collections.abc import Iterator
from pathlib import Path

import orjson

CATEGORIES = ("books", "garden", "toys", "kitchen", "music", "outdoor", "office", "games")
TIERS = ("free", "silver", "gold")
COUNTRIES = ("FR", "DE", "US", "JP", "BR", "IN", "NG", "CA")
USERS = 5000


def _value(rng: random.Random) -> float:
    if rng.random() < 0.1:
        return (rng.randrange(1, 99_999) * 10 + 5) / 1000
    return rng.randrange(1, 99_999) / 100


def records(n: int, seed: int = 7, start: int = 0) -> Iterator[dict]:
    rng = random.Random(seed)
    for i in range(start, start + n):
        yield {
            "order_id": f"o-{i:07d}",
            "user_id": f"u-{rng.randrange(USERS):05d}",
            "value": _value(rng),
            "category": rng.choice(CATEGORIES),
        }


def ndjson(n: int, seed: int = 7) -> bytes:
    """``n`` records as one NDJSON object (bytes, trailing newline)."""
    return b"\n".join(map(orjson.dumps, records(n, seed))) + b"\n"


def users() -> dict[str, dict]:
    """The lookup table for enrichment: every user id the records use."""
    rng = random.Random(11)
    return {
        f"u-{u:05d}": {"user_id": f"u-{u:05d}", "tier": rng.choice(TIERS),
                       "country": rng.choice(COUNTRIES)}
        for u in range(USERS)
    }


def write_gz(path: Path, size_bytes: int, block_records: int = 20_000) -> int:
    """Stream about ``size_bytes`` of uncompressed NDJSON into ``path`` (gzip level 1).

    Blocks are generated and compressed one at a time, so the generator's memory stays
    small whatever the size. Returns the uncompressed byte count.
    """
    written = 0
    start = 0
    with gzip.open(path, "wb", compresslevel=1) as out:
        while written < size_bytes:
            block = b"\n".join(map(orjson.dumps, records(block_records, seed=start, start=start)))
            block += b"\n"
            out.write(block)
            written += len(block)
            start += block_records
    return written
