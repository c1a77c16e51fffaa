"""Convert a decimal amount to exact integer cents.

Usage in a pipeline spec::

    - use: cents
      with: {source: price, target: price_cents}

    {"price": "19.99", "sku": "A1"}  ->  {"sku": "A1", "price_cents": 1999}

The amount may be an ``int``, a ``float``, a ``str`` (surrounding blanks are ignored;
thousands separators such as ``"1,234.50"`` are refused) or a :class:`~decimal.Decimal`.
A float is read through its shortest ``repr``, so ``0.1 + 0.2`` (``0.30000000000000004``)
gives ``30`` and ``19.99`` gives ``1999``, never ``1998``. Booleans, ``None``, a missing
field and non-finite values (NaN, infinity) fail the record with a message naming the field.
"""

from __future__ import annotations

import decimal
import math
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from typing import Any

from ..contract import Context, SettingsError
from . import _settings as s

__all__ = ["make", "to_cents"]

_ROUNDING = {"half_up": ROUND_HALF_UP, "half_even": ROUND_HALF_EVEN}
_MAX_SCALE = 18
# Generous precision; Inexact is trapped so that scaling never rounds silently.
_PREC = 60


def _context(rounding: str) -> decimal.Context:
    return decimal.Context(
        prec=_PREC,
        rounding=rounding,
        traps=[decimal.InvalidOperation, decimal.Inexact, decimal.Overflow],
        Emax=_PREC,
        Emin=decimal.MIN_EMIN,
    )


def to_cents(value: Any, *, scale: int = 2, rounding: str = ROUND_HALF_UP,
             field: str = "value", _ctx: decimal.Context | None = None) -> int:
    """``value`` times ``10**scale`` as an exact ``int``, rounded with ``rounding``.

    Raises ``ValueError`` / ``TypeError`` naming ``field`` for a value that does not fit.
    """
    t = type(value)
    if t is int:
        return value * 10**scale
    if t is bool:
        raise TypeError(f"field {field!r}: expected a decimal amount, got bool {value!r}")
    if t is float or isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"field {field!r}: amount is not finite: {value!r}")
        d = Decimal(repr(float(value)))
    elif t is str or isinstance(value, str):
        text = s.number_text(value)
        if text is None:
            raise ValueError(f"field {field!r}: not a decimal amount: {s.short(value)}")
        try:
            d = Decimal(text)
        except decimal.InvalidOperation:
            raise ValueError(f"field {field!r}: not a decimal amount: {s.short(value)}") from None
    elif isinstance(value, Decimal):
        d = value
    elif isinstance(value, int):
        return int(value) * 10**scale
    elif value is None:
        raise ValueError(f"field {field!r} is null")
    else:
        raise TypeError(
            f"field {field!r}: expected a decimal amount, got {s.type_name(value)} {s.short(value)}"
        )
    if not d.is_finite():
        raise ValueError(f"field {field!r}: amount is not finite: {s.short(value)}")
    ctx = _ctx or _context(rounding)
    try:
        return int(d.scaleb(scale, ctx).to_integral_value(context=ctx))
    except decimal.DecimalException:
        raise ValueError(
            f"field {field!r}: amount is too large or too precise to convert exactly: {s.short(value)}"
        ) from None


def _short_float(value: float, scale: int) -> str | None:
    """``value * 10**scale`` as integer text when the shortest repr has at most ``scale``
    decimals ("19.99" -> "1999", "-0.5" -> "-050"); ``None`` when rounding or an exponent
    is involved (or for NaN / infinity), which :func:`to_cents` then handles.

    The same exact result as going through ``Decimal(repr(value))``, without the Decimal
    arithmetic: this is the common case and sits on the per-record path.
    """
    whole, dot, frac = repr(value).partition(".")
    if not dot or len(frac) > scale or not frac.isdigit():
        return None
    return whole + frac.ljust(scale, "0")


def make(*, source: str = "value", target: str = "value_cents", keep_source: bool = False,
         round: str = "half_up", scale: int = 2):
    """Convert the decimal amount in ``source`` to integer cents in ``target``.

    Settings:

    - ``source`` (default ``"value"``): the field holding the amount; missing or null fails
      the record.
    - ``target`` (default ``"value_cents"``): the field that receives the integer.
    - ``keep_source`` (default ``false``): keep ``source`` next to ``target``.
    - ``round``: ``half_up`` (default; 0.125 -> 13) or ``half_even`` (0.125 -> 12), for
      amounts with more decimals than ``scale``.
    - ``scale`` (default 2): decimal digits of the unit; the amount is multiplied by
      ``10**scale`` (3 for mills, 0 to round to whole units).

    Example::

        - use: cents
          with: {source: value, target: value_cents, round: half_even}

        {"value": 19.99}  ->  {"value_cents": 1999}
    """
    source = s.name("source", source)
    target = s.name("target", target)
    keep_source = s.flag("keep_source", keep_source)
    mode = s.choice("round", round, tuple(_ROUNDING))
    if type(scale) is not int:
        raise SettingsError("scale", f"must be an integer, got {s.type_name(scale)} {s.short(scale)}")
    if not 0 <= scale <= _MAX_SCALE:
        raise SettingsError("scale", f"must be between 0 and {_MAX_SCALE}, got {scale}")

    factor = 10**scale
    dctx = _context(_ROUNDING[mode])
    remove = not keep_source and source != target

    def cents(record: dict[str, Any], ctx: Context) -> dict[str, Any]:
        try:
            value = record[source]
        except KeyError:
            raise ValueError(f"field {source!r} is missing") from None
        t = type(value)
        if t is int:
            record[target] = value * factor
        elif t is float and (text := _short_float(value, scale)) is not None:
            record[target] = int(text)
        else:
            record[target] = to_cents(value, scale=scale, field=source, _ctx=dctx)
        if remove:
            del record[source]
        return record

    def cents_columnar(table: Any, ctx: Context) -> tuple[Any, dict[int, Exception]] | None:
        import pyarrow as pa
        import pyarrow.compute as pc

        from . import _columnar as col

        n = table.num_rows
        if source not in table.column_names:
            return table, {i: ValueError(f"field {source!r} is missing") for i in range(n)}
        values = table.column(source)
        if pa.types.is_int64(values.type):
            try:
                out = pc.multiply_checked(values, factor)
            except pa.ArrowInvalid:  # beyond 64 bits: per record
                return None
            odd = col.indices(pc.is_null(values))
        elif pa.types.is_float64(values.type):
            # c / factor == v exactly means the shortest repr of v has at most `scale`
            # decimals (unique below the bound), which is when to_cents gives c exactly
            c = pc.round(pc.multiply(values, float(factor)))
            exact = pc.and_(pc.less(pc.abs(values), 2.0**50 / factor),
                            pc.equal(pc.divide(c, float(factor)), values))
            exact = pc.fill_null(exact, False)
            out = pc.cast(pc.if_else(exact, c, 0.0), pa.int64())
            odd = col.indices(pc.invert(exact))
        else:  # text, booleans, nulls: per record
            out = pa.nulls(n, pa.int64())
            odd = list(range(n))
        errors: dict[int, Exception] = {}
        if odd:
            fixed, errors = col.per_row(table, odd, cents, ctx, target)
            merged = out.to_pylist()
            for i, v in fixed.items():
                merged[i] = v
            try:
                out = pa.array(merged, pa.int64())
            except (OverflowError, TypeError, pa.ArrowException):
                return None
        table = col.put(table, target, out)
        if remove:
            table = table.drop_columns([source])
        return table, errors

    cents.columnar = cents_columnar  # type: ignore[attr-defined]
    return cents
