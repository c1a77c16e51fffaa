"""Inputs shared by the matrix cells: orders with unique ids for users the lookup knows."""

from __future__ import annotations

import json

USERS = ("u1", "u2", "u3")


def orders(n: int, start: int = 1, *, bad_value: set[int] = frozenset()) -> list[dict]:
    """``n`` orders with order ids ``start..start+n-1``; ``bad_value`` ids get a value the
    cents step refuses (they are dead-lettered by the chain)."""
    return [{"order_id": str(i), "user_id": USERS[i % 3], "category": "books",
             "value": "abc" if i in bad_value else i + 0.25, "ts": "2024-05-01T10:00:00Z"}
            for i in range(start, start + n)]


def ndjson(records: list[dict]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def ids(records: list[dict]) -> list[str]:
    return [r["order_id"] for r in records]
