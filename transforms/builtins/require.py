"""Fail records that lack required fields (missing or null).

Usage in a pipeline spec::

    - use: require
      with: {fields: [order_id, user_id]}

    {"order_id": 1, "user_id": null}
      ->  dead-letter: ValueError("missing required field(s): user_id")

A record that has every field (non-null) passes through unchanged.
"""

from __future__ import annotations

from typing import Any

from ..contract import Context
from . import _settings as s

__all__ = ["make"]


def make(*, fields: list[str], allow_empty_string: bool = True):
    """Fail a record that lacks any of ``fields`` or has ``null`` in one of them.

    Settings:

    - ``fields``: non-empty list of field names that must be present and non-null.
    - ``allow_empty_string`` (default ``true``): when ``false``, ``""`` counts as missing.

    The error lists every missing field, in the order of ``fields``.

    Example::

        - use: require
          with: {fields: [order_id, email], allow_empty_string: false}

        {"order_id": 7, "email": "a@b.c"}  ->  {"order_id": 7, "email": "a@b.c"}
        {"order_id": 7, "email": ""}       ->  ValueError: missing required field(s): email
    """
    names = tuple(s.names("fields", fields))
    allow_empty = s.flag("allow_empty_string", allow_empty_string)

    def require_columnar(table: Any, ctx: Context) -> tuple[Any, dict[int, Exception]]:
        import pyarrow as pa
        import pyarrow.compute as pc

        from . import _columnar as col

        n = table.num_rows
        masks = {}
        for name in names:
            if name not in table.column_names:
                masks[name] = pa.array([True] * n, pa.bool_())
                continue
            values = table.column(name)
            if pa.types.is_null(values.type):
                masks[name] = pa.array([True] * n, pa.bool_())
                continue
            m = pc.is_null(values)
            if not allow_empty and pa.types.is_string(values.type):
                m = pc.or_(m, pc.fill_null(pc.equal(values, ""), False))
            masks[name] = m
        anything = None
        for m in masks.values():
            anything = m if anything is None else pc.or_(anything, m)
        errors: dict[int, Exception] = {}
        failing = col.indices(anything) if anything is not None else []
        if failing:
            flags = {name: m.to_pylist() for name, m in masks.items()}
            for i in failing:
                missing = [name for name in names if flags[name][i]]
                errors[i] = ValueError(f"missing required field(s): {', '.join(missing)}")
        return table, errors

    if allow_empty:

        def require(record: dict[str, Any], ctx: Context) -> dict[str, Any]:
            for name in names:
                if record.get(name) is None:
                    missing = [n for n in names if record.get(n) is None]
                    raise ValueError(f"missing required field(s): {', '.join(missing)}")
            return record

    else:

        def _absent(value: Any) -> bool:
            return value is None or value == ""

        def require(record: dict[str, Any], ctx: Context) -> dict[str, Any]:
            for name in names:
                value = record.get(name)
                if value is None or value == "":
                    missing = [n for n in names if _absent(record.get(n))]
                    raise ValueError(f"missing required field(s): {', '.join(missing)}")
            return record

    require.columnar = require_columnar  # type: ignore[attr-defined]
    return require
