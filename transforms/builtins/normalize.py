"""Normalize text fields: strip, upper, lower, title, collapse whitespace.

Usage in a pipeline spec::

    - use: normalize
      with: {fields: {category: upper, email: [strip, lower], name: collapse}}

    {"category": "books", "email": " Ann@X.org ", "name": "Ann   Lee"}
      ->  {"category": "BOOKS", "email": "ann@x.org", "name": "Ann Lee"}

Only string values change: numbers, booleans, lists and ``None`` are left as they are,
and a field missing from the record is ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..contract import Context, SettingsError
from . import _settings as s

__all__ = ["OPS", "make"]


def _collapse(text: str) -> str:
    return " ".join(text.split())


#: The operations, by name. ``collapse`` turns every run of whitespace into one space and
#: trims both ends.
OPS: dict[str, Callable[[str], str]] = {
    "strip": str.strip,
    "upper": str.upper,
    "lower": str.lower,
    "title": str.title,
    "collapse": _collapse,
}


def _chain(ops: list[Callable[[str], str]]) -> Callable[[str], str]:
    if len(ops) == 1:
        return ops[0]
    ops_t = tuple(ops)

    def chained(text: str) -> str:
        for op in ops_t:
            text = op(text)
        return text

    return chained


def make(*, fields: dict[str, str | list[str]]):
    """Apply text operations to string fields, in the order listed.

    Settings:

    - ``fields``: a mapping field -> operation, or field -> list of operations applied in
      order. Operations: ``strip``, ``upper``, ``lower``, ``title``, ``collapse`` (runs of
      whitespace become one space; the ends are trimmed).

    Example::

        - use: normalize
          with: {fields: {email: [strip, lower], country: upper}}

        {"email": "  Bob@Mail.COM", "country": "fr"}  ->  {"email": "bob@mail.com", "country": "FR"}
    """
    spec = s.mapping("fields", fields)
    known = ", ".join(OPS)
    plan: list[tuple[str, Callable[[str], str]]] = []
    for field, ops in spec.items():
        names = [ops] if isinstance(ops, str) else ops
        if not isinstance(names, (list, tuple)) or not names:
            raise SettingsError(
                "fields",
                f"field {field!r}: expected an operation or a non-empty list of them "
                f"({known}), got {s.short(ops)}",
            )
        funcs = []
        for op in names:
            if not isinstance(op, str) or op not in OPS:
                raise SettingsError(
                    "fields", f"field {field!r}: unknown operation {s.short(op)} (known: {known})"
                )
            funcs.append(OPS[op])
        plan.append((field, _chain(funcs)))
    steps = tuple(plan)

    def normalize(record: dict[str, Any], ctx: Context) -> dict[str, Any]:
        for field, fn in steps:
            value = record.get(field)
            if isinstance(value, str):
                record[field] = fn(value)
        return record

    return normalize
