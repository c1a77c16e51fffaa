"""The columnar path: a chunk of records as one Arrow table through the steps that have a
vectorised form (``f.columnar``, see :mod:`transforms.contract`).

Used by the local runner only; a function artifact never imports this module (nor
pyarrow), so the cloud runtimes keep the per-record path.

A chunk takes this path when it is *regular*: every record has the same fields in the
same order and each field's values share one plain type (str, int within 64 bits, float,
bool; ``None`` anywhere). Then an Arrow row turned back into a dict is exactly the
record, so a dead-letter entry of the columnar path carries the same record as the
per-record path's. Anything else (a missing field, mixed types, nested values) runs per
record, as does every step from the first one without a vectorised form, or whose
``columnar`` declines the table (returns ``None``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["prefix_length", "row", "to_table"]

_NONE = type(None)


def prefix_length(steps: Sequence[Any]) -> int:
    """How many leading steps can run columnar: per-record steps with ``columnar``."""
    n = 0
    for step in steps:
        if step.batch is not None or getattr(step.fn, "columnar", None) is None:
            break
        n += 1
    return n


def to_table(records: list[dict[str, Any]]) -> Any | None:
    """The records as an Arrow table, or ``None`` when the chunk is not regular."""
    import pyarrow as pa

    if not records:
        return None
    keys = tuple(records[0])
    if not keys or len(set(map(tuple, records))) != 1:
        return None
    plain = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}
    columns = {}
    for k in keys:
        values = [r[k] for r in records]
        kinds = set(map(type, values))
        kinds.discard(_NONE)
        if not kinds:
            columns[k] = pa.nulls(len(values))
            continue
        if len(kinds) != 1:
            return None
        typ = plain.get(kinds.pop())
        if typ is None:
            return None
        try:
            columns[k] = pa.array(values, typ)
        except (OverflowError, TypeError, pa.ArrowException):
            return None
    return pa.table(columns)


def row(table: Any, i: int) -> dict[str, Any]:
    """Row ``i`` as the record it was."""
    return table.slice(i, 1).to_pylist()[0]


def stamp(table: Any, head: str, lines: Sequence[int], id_field: str) -> Any:
    """``id_field`` = ``<head>-<line>-0`` on every row (a columnar step never fans out)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = pc.binary_join_element_wise(
        f"{head}-", pc.cast(pa.array(lines, pa.int64()), pa.string()), "-0", "")
    if id_field in table.column_names:
        return table.set_column(table.column_names.index(id_field), id_field, ids)
    return table.append_column(id_field, ids)
