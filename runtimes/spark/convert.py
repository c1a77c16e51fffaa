"""The Parquet sink's column types: a record's value -> the value Spark writes, or the
reason it cannot be stored.

The same columns and the same refusals as the local warehouse (:mod:`runtimes.local`'s
DuckDB sink casts a value's text with ``TRY_CAST``): a value that does not fit its column
is a non-retryable sink failure and goes to the dead-letter with the same message, so a
backfill and ``headwater run`` dead-letter the same records. Types: ``string``,
``int``/``bigint``, ``double``, ``boolean``, ``timestamp`` (UTC), ``date`` and
``decimal(p,s)``; lists and objects in a ``string`` column are stored as JSON text.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from ..core.codec import as_text

__all__ = ["Column", "Misfit", "columns_of"]

_DECIMAL = re.compile(r"^decimal\s*\(\s*(\d{1,2})\s*,\s*(\d{1,2})\s*\)$")
_INT = re.compile(r"^[+-]?\d+$")
_BOOL = {"true": True, "t": True, "1": True, "false": False, "f": False, "0": False}
INT64 = (-(2 ** 63), 2 ** 63 - 1)


class Misfit(ValueError):
    """The value does not fit the column."""


def _number(s: str) -> float:
    try:
        return float(s.strip())
    except ValueError:
        raise Misfit from None


def _bigint(v: Any) -> int:
    if type(v) is bool:
        raise Misfit
    if type(v) is int:
        n = v
    else:
        s = as_text(v).strip()  # type: ignore[union-attr]
        if _INT.match(s):
            n = int(s)
        else:
            f = _number(s)
            if not math.isfinite(f) or not f.is_integer():
                raise Misfit
            n = int(f)
    if not INT64[0] <= n <= INT64[1]:
        raise Misfit
    return n


def _double(v: Any) -> float:
    if type(v) is bool:
        raise Misfit
    if type(v) in (int, float):
        return float(v)
    return _number(as_text(v))  # type: ignore[arg-type]


def _boolean(v: Any) -> bool:
    if type(v) is bool:
        return v
    b = _BOOL.get(as_text(v).strip().lower())  # type: ignore[union-attr]
    if b is None:
        raise Misfit
    return b


def _datetime(v: Any) -> dt.datetime:
    if isinstance(v, dt.datetime):
        d = v
    elif isinstance(v, dt.date):
        d = dt.datetime(v.year, v.month, v.day)
    else:
        s = as_text(v).strip()  # type: ignore[union-attr]
        try:
            d = dt.datetime.fromisoformat(s)
        except ValueError:
            raise Misfit from None
    return d.astimezone(dt.UTC) if d.tzinfo else d.replace(tzinfo=dt.UTC)


def _timestamp(v: Any) -> dt.datetime:
    # aware (UTC): Spark turns a naive datetime into an instant by the worker's local zone
    return _datetime(v)


def _date(v: Any) -> dt.date:
    if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
        return v
    return _datetime(v).date()


def _decimal(p: int, s: int) -> Callable[[Any], decimal.Decimal]:
    quantum = decimal.Decimal(1).scaleb(-s)

    def convert(v: Any) -> decimal.Decimal:
        if type(v) is bool:
            raise Misfit
        try:
            d = decimal.Decimal(as_text(v).strip())  # type: ignore[union-attr]
        except decimal.InvalidOperation:
            raise Misfit from None
        if not d.is_finite():
            raise Misfit
        d = d.quantize(quantum, rounding=decimal.ROUND_HALF_UP)
        if d.adjusted() >= p - s:
            raise Misfit
        return d

    return convert


class Column:
    """One declared sink column: its name, its warehouse type name (as the local sink
    spells it, for messages), its Spark DDL type and the conversion."""

    def __init__(self, name: str, declared: str) -> None:
        t = declared.strip().lower()
        self.name = name
        m = _DECIMAL.match(t)
        simple: dict[str, tuple[str, str, Callable[[Any], Any]]] = {
            "string": ("VARCHAR", "STRING", as_text),
            "int": ("BIGINT", "BIGINT", _bigint),
            "bigint": ("BIGINT", "BIGINT", _bigint),
            "double": ("DOUBLE", "DOUBLE", _double),
            "boolean": ("BOOLEAN", "BOOLEAN", _boolean),
            "timestamp": ("TIMESTAMP", "TIMESTAMP", _timestamp),
            "date": ("DATE", "DATE", _date),
        }
        if t in simple:
            self.sql, self.ddl, self.convert = simple[t]
        elif m and 1 <= int(m.group(1)) <= 38 and int(m.group(2)) <= int(m.group(1)):
            p, s = int(m.group(1)), int(m.group(2))
            self.sql = self.ddl = f"DECIMAL({p},{s})"
            self.convert = _decimal(p, s)
        else:
            raise ValueError(f"sink column {name!r}: unknown type {declared!r}")


def columns_of(declared: Mapping[str, str]) -> list[Column]:
    return [Column(name, t) for name, t in declared.items()]
