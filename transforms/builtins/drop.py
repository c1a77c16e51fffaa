"""Remove fields, or keep only some.

Usage in a pipeline spec::

    - use: drop
      with: {fields: [password, ssn]}

    {"id": 1, "password": "x", "ssn": "y"}  ->  {"id": 1}

    - use: drop
      with: {keep: [id, amount]}

    {"id": 1, "amount": 5, "note": "n"}  ->  {"id": 1, "amount": 5}

Exactly one of ``fields`` and ``keep`` is given. Fields missing from the record are ignored.
"""

from __future__ import annotations

from typing import Any

from ..contract import Context, SettingsError
from . import _settings as s

__all__ = ["make"]


def make(*, fields: list[str] | None = None, keep: list[str] | None = None):
    """Remove the listed ``fields``, or remove every field not listed in ``keep``.

    Settings (exactly one of them):

    - ``fields``: non-empty list of fields to remove.
    - ``keep``: non-empty list of the only fields to keep.

    Example::

        - use: drop
          with: {keep: [order_id, total]}

        {"order_id": 3, "total": 9, "debug": true}  ->  {"order_id": 3, "total": 9}
    """
    if (fields is None) == (keep is None):
        raise SettingsError(
            "keep" if fields is not None else "fields",
            "give exactly one of 'fields' (fields to remove) and 'keep' (fields to keep)",
        )
    if fields is not None:
        remove = tuple(s.names("fields", fields))

        def drop(record: dict[str, Any], ctx: Context) -> dict[str, Any]:
            pop = record.pop
            for name in remove:
                pop(name, None)
            return record

        def drop_columnar(table: Any, ctx: Context) -> tuple[Any, dict[int, Exception]]:
            return table.drop_columns([n for n in remove if n in table.column_names]), {}

        drop.columnar = drop_columnar  # type: ignore[attr-defined]
        return drop

    kept = frozenset(s.names("keep", keep))

    def keep_only(record: dict[str, Any], ctx: Context) -> dict[str, Any]:
        extra = [name for name in record if name not in kept]
        for name in extra:
            del record[name]
        return record

    def keep_columnar(table: Any, ctx: Context) -> tuple[Any, dict[int, Exception]]:
        return table.select([n for n in table.column_names if n in kept]), {}

    keep_only.columnar = keep_columnar  # type: ignore[attr-defined]
    return keep_only
