"""Coerce fields to declared types (int, float, decimal, str, bool, timestamp).

Usage in a pipeline spec::

    - use: schema
      with:
        fields: {qty: int, price: decimal, paid: bool, at: timestamp}
        required: true
        extra: drop
        null_values: [NA, "N/A", "null"]

    {"qty": "3", "price": "19.990", "paid": "yes", "at": 1714564800, "tmp": 1}
      ->  {"qty": 3, "price": "19.990", "paid": true, "at": "2024-05-01T12:00:00Z"}

Every output value is JSON-safe: ``decimal`` values become exact decimal text
(``"19.990"`` stays ``"19.990"``), ``timestamp`` values UTC ISO 8601 text. A value that does
not fit fails the record with a ``ValueError`` naming the field, the type and the value, e.g.
``field 'qty': expected int, got '1.5'``; the record is left untouched. Missing values
written as text (an empty CSV field, or a listed token such as ``NA``) become ``null``.
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from ..contract import Context, SettingsError
from . import _settings as s
from .timestamp import UTC, to_utc_iso

__all__ = ["TYPES", "make"]


class _Misfit(Exception):
    """Raised by a coercer; the transform turns it into a ValueError with the field name."""


_MAX_EXP = 1000  # refuse "1e999999": exact text or an int of that size is a memory bomb


def _sane(d: Decimal) -> bool:
    return d.is_finite() and d.adjusted() <= _MAX_EXP and d.as_tuple().exponent >= -_MAX_EXP


def _to_int(v: Any) -> int:
    t = type(v)
    if t is int:
        return v
    if t is str:
        text = s.number_text(v)
        if text is None:
            raise _Misfit
        try:
            return int(text)
        except ValueError:
            pass
        try:
            d = Decimal(text)
        except decimal.InvalidOperation:
            raise _Misfit from None
        if _sane(d) and d.adjusted() < 40 and d == d.to_integral_value():
            return int(d)
        raise _Misfit
    if t is float:
        if math.isfinite(v) and v.is_integer():
            return int(v)
        raise _Misfit
    if t is bool:
        raise _Misfit
    if isinstance(v, Decimal):
        if _sane(v) and v == v.to_integral_value():
            return int(v)
        raise _Misfit
    if isinstance(v, int):
        return int(v)
    raise _Misfit


def _to_float(v: Any) -> float:
    t = type(v)
    if t is bool:
        raise _Misfit
    if t is str:
        text = s.number_text(v)
        if text is None:
            raise _Misfit
        v = text
    elif not isinstance(v, (int, float, Decimal)):
        raise _Misfit
    try:
        out = float(v)
    except (ValueError, OverflowError):
        raise _Misfit from None
    if math.isfinite(out):
        return out
    raise _Misfit


def _to_decimal(v: Any) -> str:
    t = type(v)
    if t is str:
        text = s.number_text(v)
        if text is None:
            raise _Misfit
        try:
            d = Decimal(text)
        except decimal.InvalidOperation:
            raise _Misfit from None
        if ("e" in text or "E" in text) and not _sane(d):
            raise _Misfit
    elif t is int:
        return str(v)
    elif t is float:
        if not math.isfinite(v):
            raise _Misfit
        d = Decimal(repr(v))
    elif t is bool:
        raise _Misfit
    elif isinstance(v, Decimal):
        if not _sane(v):
            raise _Misfit
        d = v
    elif isinstance(v, int):
        return str(int(v))
    elif isinstance(v, float):
        return _to_decimal(float(v))
    else:
        raise _Misfit
    if not d.is_finite():
        raise _Misfit
    # positional notation, exact, trailing zeros kept: "19.990", "1E+3" -> "1000"
    return format(d, "f")


def _to_str(v: Any) -> str:
    t = type(v)
    if t is str:
        return v
    if t is bool:
        return "true" if v else "false"
    if t is float:
        return repr(v)
    if isinstance(v, (dict, list, tuple, set, bytes, bytearray)):
        raise _Misfit
    return str(v)


_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


def _to_bool(v: Any) -> bool:
    t = type(v)
    if t is bool:
        return v
    if t is str or isinstance(v, str):
        text = v.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise _Misfit
    if t is int or (isinstance(v, int) and not isinstance(v, bool)):
        if v == 1:
            return True
        if v == 0:
            return False
    raise _Misfit


def _to_timestamp(v: Any) -> str:
    try:
        return to_utc_iso(v, "auto", UTC)
    except (TypeError, ValueError):
        raise _Misfit from None


#: Type name -> coercer. Every coercer returns a JSON-safe value or raises.
TYPES: dict[str, Callable[[Any], Any]] = {
    "int": _to_int,
    "float": _to_float,
    "decimal": _to_decimal,
    "str": _to_str,
    "bool": _to_bool,
    "timestamp": _to_timestamp,
}


def make(*, fields: dict[str, str], required: bool = False, extra: str = "keep",
         null_values: list[str] | None = None):
    """Coerce each listed field to its declared type.

    Settings:

    - ``fields``: non-empty mapping field -> type, the types being ``int`` (from ints,
      integral floats such as ``12.0``, integer text), ``float``, ``decimal`` (exact decimal
      text), ``str`` (from any scalar, not from lists or objects), ``bool`` (``true/false``,
      ``1/0``, ``yes/no`` in any case, the integers 0 and 1) and ``timestamp`` (UTC ISO 8601
      text, see the ``timestamp`` transform).
    - ``required`` (default ``false``): every listed field must be present and non-null;
      otherwise a missing field is skipped and ``null`` stays ``null``.
    - ``extra``: what to do with fields not listed: ``keep`` (default), ``drop``, or
      ``error`` (fail the record, naming them).
    - ``null_values``: texts that mean "no value" in every listed field, whatever its
      type, e.g. ``[NA, "N/A", "null"]``; compared case-sensitively after stripping
      surrounding spaces, and such a field becomes ``null``. Whatever is listed, an empty
      (or blank) text is ``null`` for every type but ``str``; list ``""`` to make it
      ``null`` in ``str`` fields too (by default a ``str`` field keeps ``""``).

    Example::

        - use: schema
          with: {fields: {id: int, amount: decimal}, extra: error}

        {"id": "42", "amount": "10.50"}  ->  {"id": 42, "amount": "10.50"}
        {"id": "4.2", "amount": "1"}     ->  ValueError: field 'id': expected int, got '4.2'
    """
    spec = s.mapping("fields", fields)
    for name, type_ in spec.items():
        if not isinstance(type_, str) or type_ not in TYPES:
            raise SettingsError(
                "fields",
                f"field {name!r}: unknown type {s.short(type_)} (known: {', '.join(TYPES)})",
            )
    required = s.flag("required", required)
    extra = s.choice("extra", extra, ("keep", "drop", "error"))
    tokens = frozenset(_null_values(null_values))
    plan = tuple((name, type_, TYPES[type_]) for name, type_ in spec.items())
    names = tuple(spec)
    listed = frozenset(spec)

    def schema(record: dict[str, Any], ctx: Context) -> dict[str, Any]:
        nulls: list[str] = []
        for name, type_, _ in plan:
            value = record.get(name)
            if type(value) is str:
                text = value.strip()
                if text in tokens or (not text and type_ != "str"):
                    nulls.append(name)
        if required:
            missing = [n for n in names if record.get(n) is None or n in nulls]
            if missing:
                raise ValueError(f"missing required field(s): {', '.join(missing)}")
        if extra == "error":
            unexpected = [k for k in record if k not in listed]
            if unexpected:
                raise ValueError(f"unexpected field(s): {', '.join(map(str, unexpected))}")
        out = [(name, None) for name in nulls]
        for name, type_, coerce in plan:
            value = record.get(name)
            if value is None or name in nulls:
                continue
            try:
                out.append((name, coerce(value)))
            except _Misfit:
                raise ValueError(
                    f"field {name!r}: expected {type_}, got {s.short(value)}"
                ) from None
        for name, value in out:
            record[name] = value
        if extra == "drop":
            for k in [k for k in record if k not in listed]:
                del record[k]
        return record

    return schema


def _null_values(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise SettingsError(
            "null_values",
            f"must be a list of texts such as [NA, \"N/A\", \"\"], got {s.type_name(value)} "
            f"{s.short(value)}",
        )
    out: list[str] = []
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise SettingsError(
                "null_values", f"item {i} must be a text, got {s.type_name(item)} {s.short(item)}"
            )
        if item.strip() in out:
            raise SettingsError("null_values", f"{item!r} is listed twice")
        out.append(item.strip())
    return out
