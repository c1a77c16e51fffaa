"""Rename fields.

Usage in a pipeline spec::

    - use: rename
      with: {fields: {uid: user_id, amt: amount}}

    {"uid": 7, "amt": 12.5}  ->  {"user_id": 7, "amount": 12.5}

A field missing from the record is ignored. Renaming onto a field that already exists
(and is not itself renamed away) fails the record rather than overwrite it. Swaps such as
``{a: b, b: a}`` work.
"""

from __future__ import annotations

from typing import Any

from ..contract import Context, SettingsError
from . import _settings as s

__all__ = ["make"]


def make(*, fields: dict[str, str]):
    """Rename fields, old name -> new name.

    Settings:

    - ``fields``: non-empty mapping old -> new. Two old names may not share a new name,
      and a field may not be renamed to itself.

    A record whose new name already holds another field fails with a ``ValueError``
    naming both fields (the record is left untouched).

    Example::

        - use: rename
          with: {fields: {ts: created_at}}

        {"ts": "2024-05-01", "id": 1}  ->  {"id": 1, "created_at": "2024-05-01"}
    """
    spec = s.mapping("fields", fields)
    seen: dict[str, str] = {}
    for old, new in spec.items():
        if not isinstance(new, str) or not new:
            raise SettingsError(
                "fields", f"new name for {old!r} must be a non-empty string, got {s.short(new)}"
            )
        if new == old:
            raise SettingsError("fields", f"field {old!r} is renamed to itself")
        if new in seen:
            raise SettingsError(
                "fields", f"both {seen[new]!r} and {old!r} are renamed to {new!r}"
            )
        seen[new] = old
    pairs = tuple(spec.items())
    sources = frozenset(spec)

    if not sources & seen.keys():
        # no new name is also an old name: check every move first, so that a failing
        # record reaches the dead-letter untouched, then move

        def rename(record: dict[str, Any], ctx: Context) -> dict[str, Any]:
            for old, new in pairs:
                if old in record and new in record:
                    raise ValueError(
                        f"cannot rename field {old!r} to {new!r}: field {new!r} already exists"
                    )
            for old, new in pairs:
                if old in record:
                    record[new] = record.pop(old)
            return record

        def rename_columnar(table: Any, ctx: Context) -> tuple[Any, dict[int, Exception]]:
            have = table.column_names
            for old, new in pairs:
                if old in have and new in have:  # every row has both: every row fails
                    err = ValueError(f"cannot rename field {old!r} to {new!r}: "
                                     f"field {new!r} already exists")
                    return table, dict.fromkeys(range(table.num_rows), err)
            for old, new in pairs:
                if old in table.column_names:
                    values = table.column(old)
                    table = table.drop_columns([old]).append_column(new, values)
            return table, {}

        rename.columnar = rename_columnar  # type: ignore[attr-defined]
        return rename

    def rename_chained(record: dict[str, Any], ctx: Context) -> dict[str, Any]:
        present = [(old, new) for old, new in pairs if old in record]
        moving = {old for old, _ in present}
        for old, new in present:
            if new in record and new not in moving:
                raise ValueError(
                    f"cannot rename field {old!r} to {new!r}: field {new!r} already exists"
                )
        values = [(new, record.pop(old)) for old, new in present]
        for new, value in values:
            record[new] = value
        return record

    return rename_chained
