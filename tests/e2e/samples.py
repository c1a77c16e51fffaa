"""The sample orders every cloud's end-to-end tests send through the orders pipeline of
its example stack: good NDJSON, gzip, CSV, and a file mixing a good line with a truncated
line, a bad amount and an unknown user; and the row each good order becomes."""

from __future__ import annotations

from typing import Any

DAY = "raw/orders/2024/05/01/"
GOOD = "\n".join([
    '{"order_id": 1, "user_id": "u1", "value": 19.99, "category": " books ", "ts": "2024-05-01T10:00:00Z"}',
    '{"order_id": 2, "user_id": "u2", "value": "1234.50", "category": "garden", "ts": "2024-05-01T11:30:00Z"}',
    '{"order_id": 3, "user_id": "u1", "value": 0.07, "category": "Toys ", "ts": 1714564800}',
]) + "\n"
GZ = "\n".join([
    '{"order_id": 4, "user_id": "u3", "value": 0.1, "category": "food", "ts": "2024-05-01T12:00:00Z"}',
    '{"order_id": 5, "user_id": "u2", "value": 100, "category": "food", "ts": "2024-05-01T12:01:00Z"}',
]) + "\n"
CSV = "order_id,user_id,value,category,ts\n6,u3,5.10, music ,2024-05-01T13:00:00Z\n"
BAD = "\n".join([
    '{"order_id": 7, "user_id": "u1", "value": 2.5, "category": "books", "ts": "2024-05-01T14:00:00Z"}',
    '{"order_id": 8, "user_id": "u1", "value": 3',
    '{"order_id": 9, "user_id": "u2", "value": "abc", "category": "books", "ts": "2024-05-01T14:00:00Z"}',
    '{"order_id": 10, "user_id": "u404", "value": 1, "category": "books", "ts": "2024-05-01T14:00:00Z"}',
]) + "\n"


def order(order_id: str, user: str, cents: int, category: str, ts: str) -> dict[str, Any]:
    tier, country = {"u1": ("gold", "FR"), "u2": ("silver", "DE"), "u3": ("bronze", "US")}[user]
    return {"order_id": order_id, "user_id": user, "value_cents": cents, "category": category,
            "ts": ts, "tier": tier, "country": country}


# what GOOD, GZ, CSV and BAD's one good line become (cents, upper-cased category, the
# user's tier and country), by order id
WRITTEN = [
    order("1", "u1", 1999, "BOOKS", "2024-05-01T10:00:00Z"),
    order("2", "u2", 123450, "GARDEN", "2024-05-01T11:30:00Z"),
    order("3", "u1", 7, "TOYS", "2024-05-01T12:00:00Z"),
    order("4", "u3", 10, "FOOD", "2024-05-01T12:00:00Z"),
    order("5", "u2", 10000, "FOOD", "2024-05-01T12:01:00Z"),
    order("6", "u3", 510, "MUSIC", "2024-05-01T13:00:00Z"),
    order("7", "u1", 250, "BOOKS", "2024-05-01T14:00:00Z"),
]
