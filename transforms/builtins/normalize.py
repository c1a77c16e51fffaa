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
    vector: list[tuple[str, list[str]]] = []
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
        vector.append((field, list(names)))
    steps = tuple(plan)

    def normalize(record: dict[str, Any], ctx: Context) -> dict[str, Any]:
        for field, fn in steps:
            value = record.get(field)
            if isinstance(value, str):
                record[field] = fn(value)
        return record

    def normalize_columnar(table: Any, ctx: Context) -> tuple[Any, dict[int, Exception]] | None:
        import pyarrow as pa
        import pyarrow.compute as pc

        from . import _columnar as col

        if any(op not in _ASCII_OPS for _, ops in vector for op in ops):
            return None  # title, collapse: per record
        for (field, fn), (_, ops) in zip(steps, vector, strict=True):
            if field not in table.column_names:
                continue
            values = table.column(field)
            if not pa.types.is_string(values.type):
                continue  # only text changes
            out = values
            for op in ops:
                out = _ASCII_OPS[op](out)
            # ASCII text follows the same rules in both; other text takes Python's
            other = col.indices(pc.invert(pc.string_is_ascii(values)))
            if other:
                merged = out.to_pylist()
                originals = values.to_pylist()
                for i in other:
                    merged[i] = fn(originals[i])
                out = pa.array(merged, pa.string())
            table = col.put(table, field, out)
        return table, {}

    normalize.columnar = normalize_columnar  # type: ignore[attr-defined]
    return normalize


def _ascii_ops() -> dict[str, Callable[[Any], Any]]:
    import pyarrow.compute as pc

    from ._columnar import ASCII_WHITESPACE

    return {"strip": lambda a: pc.ascii_trim(a, characters=ASCII_WHITESPACE),
            "upper": pc.ascii_upper, "lower": pc.ascii_lower}


class _LazyOps(dict):
    """The vectorised operations, built on first use (pyarrow is imported then)."""

    def _load(self) -> None:
        if not self:
            self.update(_ascii_ops())

    def __contains__(self, key: object) -> bool:
        return key in ("strip", "upper", "lower")

    def __getitem__(self, key: str) -> Callable[[Any], Any]:
        self._load()
        return super().__getitem__(key)


_ASCII_OPS = _LazyOps()
