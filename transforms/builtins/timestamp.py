"""Parse ISO 8601 text or epoch numbers into UTC ISO 8601 strings.

Usage in a pipeline spec::

    - use: timestamp
      with: {field: created_at, assume_tz: "+02:00"}

    {"created_at": "2024-05-01 14:00:00"}  ->  {"created_at": "2024-05-01T12:00:00Z"}
    {"created_at": 1714564800000}          ->  {"created_at": "2024-05-01T12:00:00Z"}

Accepted values: ISO 8601 text (``2024-05-01T12:00:00Z``, ``...+02:00``, a space instead
of ``T``, date only ``2024-05-01`` meaning midnight), epoch numbers (int, float, or text
of digits such as ``"1714564800"``), and ``datetime`` / ``date`` objects. The output is
always ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` (the fraction only when it is not zero).

:func:`to_utc_iso` is the same conversion for other modules (``schema`` uses it).
"""

from __future__ import annotations

import decimal
import math
import re
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from typing import Any

from ..contract import Context, SettingsError
from . import _settings as s

__all__ = ["make", "parse_tz", "to_utc_iso"]

_EPOCH = datetime(1970, 1, 1)  # naive, UTC
_UNITS = {"s": 1_000_000, "ms": 1_000, "us": 1}  # microseconds per unit
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)", re.ASCII)
_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})", re.ASCII)


@lru_cache(maxsize=64)
def parse_tz(name: str) -> tzinfo:
    """``"UTC"``/``"Z"``, a fixed offset ``"+02:00"`` / ``"-0530"``, or an IANA zone name.

    Raises ``ValueError`` for anything else.
    """
    if name.upper() in ("UTC", "Z", "GMT"):
        return UTC
    m = _OFFSET.fullmatch(name)
    if m:
        sign, hh, mm = m.groups()
        if int(hh) > 23 or int(mm) > 59:
            raise ValueError(f"offset out of range: {name!r}")
        delta = timedelta(hours=int(hh), minutes=int(mm))
        return timezone(-delta if sign == "-" else delta)
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(name)
    except Exception:  # ZoneInfoNotFoundError, ValueError for odd keys, missing tzdata
        raise ValueError(
            f"unknown time zone {name!r} (use UTC, a fixed offset like +02:00, or an IANA name)"
        ) from None


def _epoch(number: int | Decimal, unit: str) -> datetime:
    if unit == "auto":
        size = abs(number)
        unit = "us" if size > 100_000_000_000_000 else "ms" if size > 100_000_000_000 else "s"
    per = _UNITS[unit]
    if type(number) is int:
        micros = number * per
    else:
        micros = int((number * per).to_integral_value(ROUND_HALF_EVEN))
    return _EPOCH + timedelta(microseconds=micros)


def _naive_utc(dt: datetime, assume_tz: tzinfo) -> datetime:
    if dt.tzinfo is None:
        if assume_tz is UTC:
            return dt
        dt = dt.replace(tzinfo=assume_tz)
    offset = dt.utcoffset()
    if offset:
        dt = dt - offset
    return dt.replace(tzinfo=None)


def to_utc_iso(value: Any, unit: str = "auto", assume_tz: tzinfo | str = UTC) -> str:
    """``value`` as ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``.

    ``unit`` (``auto``, ``s``, ``ms``, ``us``) applies to numbers; ``auto`` reads a
    magnitude above 1e14 as microseconds, above 1e11 as milliseconds, else seconds.
    ``assume_tz`` applies to naive text and naive datetimes.

    Raises ``ValueError`` (or ``TypeError`` for a type that is never a timestamp).
    """
    if isinstance(assume_tz, str):
        assume_tz = parse_tz(assume_tz)
    if unit != "auto" and unit not in _UNITS:
        raise ValueError(f"unknown unit {unit!r} (auto, s, ms, us)")
    try:
        t = type(value)
        if t is str:
            text = value.strip()
            if _NUMBER.fullmatch(text):
                dt = _epoch(Decimal(text) if "." in text else int(text), unit)
            else:
                if text.endswith("z"):
                    text = text[:-1] + "Z"
                dt = _naive_utc(datetime.fromisoformat(text), assume_tz)
        elif t is int:
            dt = _epoch(value, unit)
        elif t is float:
            if not math.isfinite(value):
                raise ValueError(f"not a finite number: {value!r}")
            dt = _epoch(Decimal(repr(value)), unit)
        elif t is bool:
            raise TypeError(f"not a timestamp: bool {value!r}")
        elif isinstance(value, datetime):
            dt = _naive_utc(value, assume_tz)
        elif isinstance(value, date):
            dt = _naive_utc(datetime(value.year, value.month, value.day), assume_tz)
        elif isinstance(value, Decimal):
            if not value.is_finite():
                raise ValueError(f"not a finite number: {value!r}")
            dt = _epoch(value, unit)
        elif isinstance(value, int):
            dt = _epoch(int(value), unit)
        elif isinstance(value, float):
            return to_utc_iso(float(value), unit, assume_tz)
        elif isinstance(value, str):
            return to_utc_iso(str(value), unit, assume_tz)
        else:
            raise TypeError(f"not a timestamp: {s.type_name(value)} {s.short(value)}")
    except (OverflowError, decimal.DecimalException):
        raise ValueError(f"timestamp out of range: {s.short(value)}") from None
    except ValueError:
        raise ValueError(f"not a timestamp: {s.short(value)}") from None
    return dt.isoformat() + "Z"


def make(*, field: str | None = None, fields: list[str] | None = None,
         target: str | None = None, unit: str = "auto", assume_tz: str = "UTC"):
    """Rewrite timestamps as UTC ISO 8601 strings (``2024-05-01T12:00:00Z``).

    Settings:

    - ``field``: the field to convert, or
    - ``fields``: a list of fields to convert (exactly one of ``field`` / ``fields``).
    - ``target`` (only with ``field``): write the result there instead of over ``field``.
    - ``unit``: ``auto`` (default), ``s``, ``ms`` or ``us``, for epoch numbers. ``auto``
      reads a magnitude above 1e14 as microseconds, above 1e11 as milliseconds, else seconds.
    - ``assume_tz`` (default ``UTC``): the zone of text without an offset; ``UTC``, a fixed
      offset such as ``+02:00``, or an IANA name such as ``Europe/Paris``.

    A missing or null field is left alone (put ``require`` first to insist on it). A value
    that is not a timestamp fails the record with a ``ValueError`` naming the field.

    Example::

        - use: timestamp
          with: {fields: [created_at, shipped_at], unit: ms}

        {"created_at": 1714564800000, "shipped_at": null}
          ->  {"created_at": "2024-05-01T12:00:00Z", "shipped_at": null}
    """
    if (field is None) == (fields is None):
        raise SettingsError(
            "fields" if field is not None else "field",
            "give exactly one of 'field' (one field) and 'fields' (a list of fields)",
        )
    names = (s.name("field", field),) if field is not None else tuple(s.names("fields", fields))
    if target is not None:
        if field is None:
            raise SettingsError("target", "is only allowed with 'field', not with 'fields'")
        target = s.name("target", target)
    unit = s.choice("unit", unit, ("auto", *_UNITS))
    if isinstance(assume_tz, tzinfo):
        tz = assume_tz
    else:
        if not isinstance(assume_tz, str):
            raise SettingsError("assume_tz", f"must be a string, got {s.type_name(assume_tz)}")
        try:
            tz = parse_tz(assume_tz)
        except ValueError as exc:
            raise SettingsError("assume_tz", str(exc)) from None

    def convert(name: str, value: Any) -> str:
        try:
            return to_utc_iso(value, unit, tz)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"field {name!r}: {exc}") from None

    if len(names) == 1:
        source = names[0]
        dest = target or source

        def timestamp(record: dict[str, Any], ctx: Context) -> dict[str, Any]:
            value = record.get(source)
            if value is not None:
                record[dest] = convert(source, value)
            return record

        return timestamp

    def timestamps(record: dict[str, Any], ctx: Context) -> dict[str, Any]:
        done = [
            (name, convert(name, record[name]))
            for name in names
            if record.get(name) is not None
        ]
        for name, text in done:
            record[name] = text
        return record

    return timestamps
