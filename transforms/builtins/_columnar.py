"""Shared pieces of the built-ins' vectorised forms (``f.columnar``, see
:mod:`transforms.contract`). pyarrow is imported when a vectorised form runs, never with
the built-ins: a function artifact without pyarrow uses the per-record forms.

A vectorised form computes what it can exactly with ``pyarrow.compute`` and hands the
rows it cannot (odd values, text needing Unicode rules) to the step's own per-record
function, so each row's result, and each refused row's exception, is the per-record one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

#: what ``str.strip()`` removes from an ASCII string
ASCII_WHITESPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"


def row(table: Any, i: int) -> dict[str, Any]:
    return table.slice(i, 1).to_pylist()[0]


def per_row(table: Any, rows: Iterable[int], fn: Callable[[dict[str, Any], Any], Any], ctx: Any,
            field: str) -> tuple[dict[int, Any], dict[int, Exception]]:
    """``fn`` on each of ``rows`` as a record: ``field`` of its result, or its exception."""
    import pyarrow as pa

    rows = list(rows)
    records = table.take(pa.array(rows, pa.int64())).to_pylist()  # one conversion for all
    values: dict[int, Any] = {}
    errors: dict[int, Exception] = {}
    for i, record in zip(rows, records, strict=True):
        try:
            out = fn(record, ctx)
        except Exception as exc:
            errors[i] = exc
            continue
        values[i] = out[field]
    return values, errors


def indices(mask: Any) -> list[int]:
    """Row numbers where a boolean array is true (null counts as false)."""
    import pyarrow.compute as pc

    return pc.indices_nonzero(pc.fill_null(mask, False)).to_pylist()


def put(table: Any, name: str, column: Any) -> Any:
    """``record[name] = value`` for every row: in place when the field exists, else last."""
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, column)
    return table.append_column(name, column)
