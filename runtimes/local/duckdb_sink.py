"""The local warehouse sink: one DuckDB table per pipeline sink, written inside the
transaction the runner opens per source object.

Columns come from ``sink.columns`` when the spec declares them (``string`` -> VARCHAR,
``int``/``bigint`` -> BIGINT, ``double`` -> DOUBLE, ``boolean`` -> BOOLEAN,
``timestamp`` -> TIMESTAMP (UTC), ``date`` -> DATE, ``decimal(p,s)`` -> DECIMAL(p,s)).
Record fields not declared are not stored, as in a warehouse with a fixed schema.
Without declared columns the table is created from the first batch: each field gets the
type of its values (bool -> BOOLEAN, int -> BIGINT, float or a mix of int and float ->
DOUBLE, anything else -> VARCHAR, lists and objects as JSON text); a field first seen in a
later batch is added as a new column the same way.

Two bookkeeping columns tag every row with where it came from: ``_headwater_pipeline``
and ``_headwater_object`` (the source object key). They let a reprocessed object replace
its earlier rows instead of duplicating them.

Why a staging table: an error inside a DuckDB transaction aborts the whole transaction,
so "insert, and on error retry row by row" cannot work there. Each batch is first loaded
as text into a temporary table, the rows whose values do not cast to the column types
(``TRY_CAST``) are reported as non-retryable :class:`~runtimes.core.engine.Failure` entries
(they go to the dead-letter), and the rest is inserted with ``CAST`` in one statement.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from ..core.engine import Failure

__all__ = ["DuckDBSink", "SinkSchemaError", "quote", "sql_type"]

META = ("_headwater_pipeline", "_headwater_object")
ID_COLUMN = "_headwater_id"  # written by the engine on every record
_DECIMAL = re.compile(r"^decimal\s*\(\s*(\d{1,2})\s*,\s*(\d{1,2})\s*\)$")
_TYPES = {"string": "VARCHAR", "int": "BIGINT", "bigint": "BIGINT", "double": "DOUBLE",
          "boolean": "BOOLEAN", "timestamp": "TIMESTAMP", "date": "DATE"}
_STAGE = "_headwater_stage"


class SinkSchemaError(ValueError):
    """A declared column type is not one the local warehouse knows."""


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_type(column: str, declared: str) -> str:
    """The DuckDB type for a ``sink.columns`` type name."""
    t = declared.strip().lower()
    if t in _TYPES:
        return _TYPES[t]
    m = _DECIMAL.match(t)
    if m:
        p, s = int(m.group(1)), int(m.group(2))
        if 1 <= p <= 38 and s <= p:
            return f"DECIMAL({p},{s})"
    raise SinkSchemaError(
        f"sink column {column!r}: unknown type {declared!r} (use string, int, bigint, double, "
        "boolean, timestamp, date or decimal(p,s) with p <= 38)")


def _infer(values: list[Any]) -> str:
    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return "VARCHAR"
    if kinds == {bool}:
        return "BOOLEAN"
    if kinds == {int}:
        return "BIGINT"
    if kinds <= {int, float}:
        return "DOUBLE"
    return "VARCHAR"


def _text(v: Any) -> str | None:
    """A value as the text DuckDB casts from."""
    if v is None or type(v) is str:
        return v
    if type(v) is bool:
        return "true" if v else "false"
    if type(v) is float:
        return repr(v)
    if isinstance(v, (int, decimal.Decimal)):
        return str(v)
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, (dict, list, tuple)):
        return orjson.dumps(v, default=str).decode()
    return str(v)


class DuckDBSink:
    """A :class:`runtimes.core.engine.Sink` writing to ``table`` over an open connection.

    The caller owns the transaction: ``write`` only inserts, so the rows of an object
    and its ledger entry commit (or roll back) together.
    """

    def __init__(self, con: Any, table: str, columns: Mapping[str, str] | None = None, *,
                 pipeline: str = "", max_batch: int = 500) -> None:
        self.con = con
        self.table = table
        self.pipeline = pipeline
        self.max_batch = max_batch
        self.object_key = ""
        self.declared = {c: sql_type(c, t) for c, t in (columns or {}).items()}
        for c in self.declared:
            if c in META:
                raise SinkSchemaError(f"sink column {c!r} is reserved for headwater's bookkeeping")
        if self.declared:  # every row's stable id, as in every cloud warehouse
            self.declared.setdefault(ID_COLUMN, "VARCHAR")
        self.timestamps_utc = self._utc_session()

    # -- schema -----------------------------------------------------------------------

    def _utc_session(self) -> bool:
        # TIMESTAMP columns hold UTC: text with an offset is converted, not truncated
        try:
            self.con.execute("SET TimeZone = 'UTC'")
            self.con.execute("SELECT CAST('2024-01-01T00:00:00+01:00' AS TIMESTAMPTZ)")
        except Exception:  # no ICU extension: plain TIMESTAMP casts, offsets must be Z
            return False
        return True

    def existing_columns(self) -> dict[str, str]:
        rows = self.con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
            [self.table],
        ).fetchall()
        return {name: dtype for name, dtype in rows}

    def prepare(self) -> None:
        """Create the table from declared columns, or add what an existing one lacks."""
        have = self.existing_columns()
        if not have and self.declared:
            cols = [f"{quote(c)} {t}" for c, t in self.declared.items()]
            cols += [f"{quote(m)} VARCHAR" for m in META]
            self.con.execute(f"CREATE TABLE IF NOT EXISTS {quote(self.table)} ({', '.join(cols)})")
            return
        if have:
            self._add_missing(have, {**self.declared, **dict.fromkeys(META, "VARCHAR")})

    def _add_missing(self, have: Mapping[str, str], want: Mapping[str, str]) -> None:
        for c, t in want.items():
            if c not in have:
                self.con.execute(f"ALTER TABLE {quote(self.table)} ADD COLUMN {quote(c)} {t}")

    def _columns_for(self, records: Sequence[Mapping[str, Any]]) -> dict[str, str]:
        have = self.existing_columns()
        if self.declared:
            if not have:
                self.prepare()
                have = self.existing_columns()
            return {c: have[c] for c in self.declared}
        fields: dict[str, list[Any]] = {}
        for r in records:
            for k, v in r.items():
                if k not in META:
                    fields.setdefault(k, []).append(v)
        want = {c: _infer(vs) for c, vs in fields.items()}
        if not have:
            cols = [f"{quote(c)} {t}" for c, t in want.items()]
            cols += [f"{quote(m)} VARCHAR" for m in META]
            self.con.execute(f"CREATE TABLE {quote(self.table)} ({', '.join(cols)})")
        else:
            self._add_missing(have, {**want, **dict.fromkeys(META, "VARCHAR")})
        have = self.existing_columns()
        return {c: t for c, t in have.items() if c not in META}

    # -- casts ------------------------------------------------------------------------

    def _cast(self, expr: str, dtype: str, try_: bool) -> str:
        fn = "TRY_CAST" if try_ else "CAST"
        if dtype == "VARCHAR":
            return expr
        if dtype.startswith("TIMESTAMP") and dtype != "TIMESTAMP WITH TIME ZONE" \
                and self.timestamps_utc:
            return f"{fn}({fn}({expr} AS TIMESTAMPTZ) AS TIMESTAMP)"
        return f"{fn}({expr} AS {dtype})"

    def _misfit(self, expr: str, dtype: str) -> str:
        cast = self._cast(expr, dtype, True)
        bad = f"{cast} IS NULL"
        if dtype in ("BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT"):
            # a BIGINT cast rounds '1.5' to 2; refuse anything that is not integral
            bad += f" OR TRY_CAST({expr} AS DOUBLE) IS DISTINCT FROM {cast}"
        # never NULL: a NULL here would neither insert nor report the row
        return f"COALESCE({expr} IS NOT NULL AND ({bad}), TRUE)"

    # -- write ------------------------------------------------------------------------

    def write(self, records: list[dict[str, Any]]) -> list[Failure]:
        if not records:
            return []
        columns = self._columns_for(records)
        names = list(columns)
        stage_cols = ["idx BIGINT"] + [f"c{i} VARCHAR" for i in range(len(names))]
        con = self.con
        con.execute(f"CREATE OR REPLACE TEMP TABLE {_STAGE} ({', '.join(stage_cols)})")
        try:
            self._stage(records, names)
            misfits = [self._misfit(f"c{i}", columns[n]) for i, n in enumerate(names)]
            failures: list[Failure] = []
            if misfits:
                which = " ".join(f"WHEN {m} THEN {i}" for i, m in enumerate(misfits))
                bad = con.execute(
                    f"SELECT idx, CASE {which} END FROM {_STAGE} "
                    f"WHERE {' OR '.join(misfits)} ORDER BY idx"
                ).fetchall()
                for idx, col in bad:
                    name = names[col]
                    value = records[idx].get(name)
                    failures.append(Failure(
                        idx, "ConversionError",
                        f"column {name!r} ({columns[name]}) of table {self.table!r} cannot "
                        f"store {type(value).__name__} {value!r}", retryable=False))
            targets = [quote(n) for n in names] + [quote(m) for m in META]
            values = [self._cast(f"c{i}", columns[n], False) for i, n in enumerate(names)]
            where = f" WHERE NOT ({' OR '.join(misfits)})" if misfits else ""
            inserted = con.execute(
                f"INSERT INTO {quote(self.table)} ({', '.join(targets)}) "
                f"SELECT {', '.join(values + ['?', '?'])} FROM {_STAGE}{where}",
                [self.pipeline, self.object_key],
            ).fetchall()
            # every record is inserted or reported, never neither (the caller rolls back)
            if inserted and inserted[0][0] != len(records) - len(failures):
                raise RuntimeError(
                    f"table {self.table!r}: inserted {inserted[0][0]} of "
                    f"{len(records) - len(failures)} records that passed the type check")
        finally:
            con.execute(f"DROP TABLE IF EXISTS {_STAGE}")
        return failures

    def _stage(self, records: list[dict[str, Any]], names: list[str]) -> None:
        width = len(names) + 1
        row = "(" + ", ".join(["?"] * width) + ")"
        step = max(1, 2000 // width)  # keep each statement's parameter list modest
        for start in range(0, len(records), step):
            part = records[start:start + step]
            params: list[Any] = []
            for i, r in enumerate(part, start):
                params.append(i)
                params.extend(_text(r.get(n)) for n in names)
            self.con.execute(f"INSERT INTO {_STAGE} VALUES {', '.join([row] * len(part))}",
                             params)

    def delete_object(self, key: str) -> int:
        """Remove the rows an earlier run of this pipeline wrote for object ``key``."""
        if not self.existing_columns():
            return 0
        rows = self.con.execute(
            f"DELETE FROM {quote(self.table)} WHERE _headwater_pipeline = ? "
            "AND _headwater_object = ?", [self.pipeline, key]).fetchall()
        return int(rows[0][0]) if rows else 0
