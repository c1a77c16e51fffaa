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

How a batch gets in: it becomes one Arrow table (one typed column per field, built from
the records' values without turning them into text), registered with DuckDB, and goes in
with one ``INSERT INTO t SELECT ... FROM`` that relation. An error inside a DuckDB
transaction aborts the whole transaction, so "insert, and on error retry row by row"
cannot work; instead the values that may not fit their column are checked first with
vectorised ``TRY_CAST``s over the same relation, the rows that do not fit are reported
as non-retryable :class:`~runtimes.core.engine.Failure` entries (they go to the
dead-letter, with the column, its type and the value), and the insert skips them.

A value is read the way its text would be: a column whose Arrow type is the column's
own type (int -> BIGINT, float -> DOUBLE, bool -> BOOLEAN, text -> VARCHAR) is taken as
it is; any other value is cast by DuckDB to text first and then to the column's type, so
``"8"`` and ``8.0`` fit a BIGINT column and ``1.5``, ``"abc"`` and ``true`` do not. Only a
field whose values mix Python types (or are dates, lists, objects ...) is turned into
text in Python, value by value.

The table's columns are read once and cached; the cache changes only when a batch brings
fields it has not seen (without declared columns) and is dropped by :meth:`forget` when
the runner rolls a transaction back.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from ..core.codec import as_text
from ..core.engine import Failure

__all__ = ["DuckDBSink", "SinkSchemaError", "arrow_batch", "quote", "sql_type"]

META = ("_headwater_pipeline", "_headwater_object")
ID_COLUMN = "_headwater_id"  # written by the engine on every record
_DECIMAL = re.compile(r"^decimal\s*\(\s*(\d{1,2})\s*,\s*(\d{1,2})\s*\)$")
_TYPES = {"string": "VARCHAR", "int": "BIGINT", "bigint": "BIGINT", "double": "DOUBLE",
          "boolean": "BOOLEAN", "timestamp": "TIMESTAMP", "date": "DATE"}
_REL = "_headwater_batch"
_IDX = "_headwater_idx"
_INTEGERS = ("BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT")
# an Arrow source column whose type is already the column's type is taken as it is
_NATIVE = {"int64": "BIGINT", "double": "DOUBLE", "bool": "BOOLEAN", "string": "VARCHAR",
           "large_string": "VARCHAR"}
_NONE = type(None)
_DEFER_ROWS = 100_000  # rows kept back at most before an INSERT


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


def _arrow_infer(type_: Any) -> str:
    """The column type :func:`_infer` gives the values of an Arrow column of ``type_``."""
    return {"int64": "BIGINT", "double": "DOUBLE", "bool": "BOOLEAN"}.get(str(type_), "VARCHAR")


def arrow_column(values: list[Any]) -> pa.Array:
    """One field's values as an Arrow array: typed when they share one plain type
    (str, int, float, bool; ``None`` anywhere), else their text."""
    kinds = set(map(type, values))
    kinds.discard(_NONE)
    if not kinds:
        return pa.nulls(len(values))
    if len(kinds) == 1:
        typ = _PLAIN.get(kinds.pop())
        if typ is not None:
            try:
                return pa.array(values, typ)
            except (OverflowError, TypeError, pa.ArrowException):  # an int beyond 64 bits
                pass
    return pa.array([as_text(v) for v in values], pa.string())


_PLAIN = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}


def arrow_batch(records: Sequence[Mapping[str, Any]], names: Sequence[str]) -> pa.Table:
    """``records`` as an Arrow table with one column per name (``c0``, ``c1`` ...)."""
    return pa.table({f"c{i}": arrow_column([r.get(n) for r in records])
                     for i, n in enumerate(names)})


class DuckDBSink:
    """A :class:`runtimes.core.engine.Sink` writing to ``table`` over an open connection.

    The caller owns the transaction: ``write`` only inserts, so the rows of an object
    and its ledger entry commit (or roll back) together. With ``collect=True`` the rows
    that fit are not inserted but kept, cast to the table's types, in :attr:`collected`
    (Arrow tables): a worker process checks and converts, the one writer inserts them
    with :meth:`insert_collected`.
    """

    def __init__(self, con: Any, table: str, columns: Mapping[str, str] | None = None, *,
                 pipeline: str = "", max_batch: int = 500, collect: bool = False) -> None:
        self.con = con
        self.table = table
        self.pipeline = pipeline
        self.max_batch = max_batch
        self._key = ""
        self.collect = collect
        self.collected: list[Any] = []
        self.declared = {c: sql_type(c, t) for c, t in (columns or {}).items()}
        for c in self.declared:
            if c in META:
                raise SinkSchemaError(f"sink column {c!r} is reserved for headwater's bookkeeping")
        if self.declared:  # every row's stable id, as in every cloud warehouse
            self.declared.setdefault(ID_COLUMN, "VARCHAR")
        self._have: dict[str, str] | None = None  # the table's columns, cached
        self._pending: list[tuple[str, pa.Table]] = []  # checked batches not inserted yet
        self._pending_rows = 0
        self.timestamps_utc = self._utc_session()

    @property
    def object_key(self) -> str:
        """The source object the rows written now come from (``_headwater_object``)."""
        return self._key

    @object_key.setter
    def object_key(self, key: str) -> None:
        if key != self._key:
            self.flush()  # rows kept back belong to the previous object
        self._key = key

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

    def forget(self) -> None:
        """Drop the cached columns and the batches kept back (the transaction was rolled
        back)."""
        self._have = None
        self._pending, self._pending_rows = [], 0

    def _columns(self) -> dict[str, str]:
        if self._have is None:
            self._have = self.existing_columns()
        return self._have

    def prepare(self) -> None:
        """Create the table from declared columns, or add what an existing one lacks."""
        have = self._columns()
        if not have and self.declared:
            cols = [f"{quote(c)} {t}" for c, t in self.declared.items()]
            cols += [f"{quote(m)} VARCHAR" for m in META]
            self.con.execute(f"CREATE TABLE IF NOT EXISTS {quote(self.table)} ({', '.join(cols)})")
            self._have = None
            return
        if have:
            self._add_missing(have, {**self.declared, **dict.fromkeys(META, "VARCHAR")})

    def _add_missing(self, have: Mapping[str, str], want: Mapping[str, str]) -> None:
        missing = [(c, t) for c, t in want.items() if c not in have]
        for c, t in missing:
            self.con.execute(
                f"ALTER TABLE {quote(self.table)} ADD COLUMN IF NOT EXISTS {quote(c)} {t}")
        if missing:
            self._have = None

    def _evolve(self, fields: Mapping[str, Callable[[], str]]) -> dict[str, str]:
        """The columns to write for a batch with ``fields`` (name -> its inferred type):
        the declared ones, or every field, adding the columns the table lacks."""
        have = self._columns()
        if self.declared:
            if not have:
                self.prepare()
                have = self._columns()
            return {c: have[c] for c in self.declared}
        new = [c for c in fields if c not in have and c not in META]
        if new or not have:
            self.flush()  # rows kept back go in under the columns they were checked for
            have = self._have = self.existing_columns()  # another writer may have added some
            want = {c: fields[c]() for c in fields if c not in have and c not in META}
            if not have:
                cols = [f"{quote(c)} {t}" for c, t in want.items()]
                cols += [f"{quote(m)} VARCHAR" for m in META]
                self.con.execute(
                    f"CREATE TABLE IF NOT EXISTS {quote(self.table)} ({', '.join(cols)})")
                self._have = None
            else:
                self._add_missing(have, {**want, **dict.fromkeys(META, "VARCHAR")})
            have = self._columns()
        return {c: have[c] for c in fields if c in have and c not in META}

    # -- casts ------------------------------------------------------------------------

    def _cast(self, expr: str, dtype: str, try_: bool) -> str:
        """``expr`` (text) as ``dtype``."""
        fn = "TRY_CAST" if try_ else "CAST"
        if dtype == "VARCHAR":
            return expr
        if dtype.startswith("TIMESTAMP") and dtype != "TIMESTAMP WITH TIME ZONE" \
                and self.timestamps_utc:
            return f"{fn}({fn}({expr} AS TIMESTAMPTZ) AS TIMESTAMP)"
        return f"{fn}({expr} AS {dtype})"

    def _misfit(self, expr: str, dtype: str) -> str:
        """True where the text ``expr`` does not fit ``dtype``."""
        cast = self._cast(expr, dtype, True)
        bad = f"{cast} IS NULL"
        if dtype in _INTEGERS:
            # a BIGINT cast rounds '1.5' to 2; refuse anything that is not integral
            bad += f" OR TRY_CAST({expr} AS DOUBLE) IS DISTINCT FROM {cast}"
        # never NULL: a NULL here would neither insert nor report the row
        return f"COALESCE({expr} IS NOT NULL AND ({bad}), TRUE)"

    def _plan(self, source: str, arrow_type: Any, dtype: str) -> tuple[str, str | None]:
        """(value expression, misfit condition or None) for an Arrow column into ``dtype``."""
        kind = str(arrow_type)
        if kind == "null":
            return f"CAST(NULL AS {dtype})", None
        if _NATIVE.get(kind) == dtype or (kind == "int64" and dtype == "DOUBLE"):
            return source, None
        text = source if _NATIVE.get(kind) == "VARCHAR" else f"CAST({source} AS VARCHAR)"
        if dtype == "VARCHAR":
            return text, None
        return self._cast(text, dtype, False), self._misfit(text, dtype)

    # -- write ------------------------------------------------------------------------

    def write(self, records: list[dict[str, Any]]) -> list[Failure]:
        if not records:
            return []
        fields: dict[str, Callable[[], str]] = {}
        if not self.declared:
            for k in dict.fromkeys(itertools.chain.from_iterable(records)):
                fields[k] = (lambda k=k: _infer([r[k] for r in records if k in r]))
        columns = self._evolve(fields)
        names = list(columns)
        batch = arrow_batch(records, names)
        return self._insert(batch, names, columns, lambda i, name: records[i].get(name))

    def write_table(self, table: Any) -> list[Failure]:
        """Write an Arrow table whose columns are fields (the columnar path's output)."""
        if not table.num_rows:
            return []
        fields = {} if self.declared else {
            f.name: (lambda t=f.type: _arrow_infer(t)) for f in table.schema}
        columns = self._evolve(fields)
        present = set(table.column_names)
        names = [n for n in columns if n in present]
        batch = pa.table({f"c{i}": table.column(n) for i, n in enumerate(names)})
        return self._insert(batch, names, columns,
                            lambda i, name: table.column(name)[i].as_py())

    def _insert(self, batch: Any, names: list[str], columns: Mapping[str, str],
                value: Callable[[int, str], Any]) -> list[Failure]:
        n = batch.num_rows
        plans = [self._plan(f"c{i}", batch.schema.field(i).type, columns[name])
                 for i, name in enumerate(names)]
        checks = [(i, m) for i, (_, m) in enumerate(plans) if m is not None]
        con = self.con
        failures: list[Failure] = []
        values = [expr for expr, _ in plans]
        if self.collect:
            cols = [f"{v} AS {quote(name)}" for v, name in zip(values, names, strict=True)]
            sql = f"SELECT {', '.join(cols) or '1 AS _'} FROM {_REL}"
        else:
            targets = [quote(name) for name in names] + [quote(m) for m in META]
            sql = (f"INSERT INTO {quote(self.table)} ({', '.join(targets)}) "
                   f"SELECT {', '.join(values + ['?', '?'])} FROM {_REL}")
        if checks:
            conds = " OR ".join(m for _, m in checks)
            which = " ".join(f"WHEN {m} THEN {i}" for i, m in checks)
            con.register(_REL, batch.append_column(_IDX, pa.array(range(n), pa.int64())))
            try:
                bad = con.execute(f"SELECT {_IDX}, CASE {which} END FROM {_REL} "
                                  f"WHERE {conds} ORDER BY {_IDX}").fetchall()
            finally:
                con.unregister(_REL)
            for idx, col in bad:
                name = names[col]
                v = value(idx, name)
                failures.append(Failure(
                    idx, "ConversionError",
                    f"column {name!r} ({columns[name]}) of table {self.table!r} cannot "
                    f"store {type(v).__name__} {v!r}", retryable=False))
            if failures:  # rare: keep only the rows that fit
                keep = sorted(set(range(n)) - {f.index for f in failures})
                batch = batch.take(pa.array(keep, pa.int64()))
        self._defer(sql, batch)
        return failures

    def _defer(self, sql: str, batch: pa.Table) -> None:
        if self._pending and (self._pending[0][0] != sql
                              or self._pending[0][1].schema != batch.schema
                              or self._pending_rows >= _DEFER_ROWS):
            self.flush()
        self._pending.append((sql, batch))
        self._pending_rows += batch.num_rows

    def flush(self) -> None:
        """Insert the checked batches kept back (the runner calls it before the ledger
        row, inside the object's transaction); a collecting sink casts them into
        :attr:`collected`. Each DuckDB statement costs about a millisecond and a half
        whatever its size, so many small batches go in as one."""
        if not self._pending:
            return
        sql, first = self._pending[0]
        batch = pa.concat_tables([b for _, b in self._pending]) if len(self._pending) > 1 \
            else first
        want = self._pending_rows
        self._pending, self._pending_rows = [], 0
        self.con.register(_REL, batch)
        try:
            if self.collect:
                rel = self.con.sql(sql)
                got = (getattr(rel, "to_arrow_table", None) or rel.arrow)()  # duckdb 1.x: arrow
                self.collected.append(got if got.column_names != ["_"] else
                                      got.drop_columns(["_"]))
                done = got.num_rows
            else:
                row = self.con.execute(sql, [self.pipeline, self.object_key]).fetchone()
                done = row[0] if row else want
        finally:
            self.con.unregister(_REL)
        # every record is inserted or reported, never neither (the caller rolls back)
        if done != want:
            raise RuntimeError(f"table {self.table!r}: inserted {done} of {want} records "
                               "that passed the type check")

    def insert_collected(self, tables: Sequence[Any]) -> int:
        """Insert tables a collecting sink produced (columns already of the table's types)."""
        count = 0
        for t in tables:
            if not t.num_rows:
                continue
            if not t.num_columns:  # a table with no declared field: bookkeeping only
                t = pa.table({_IDX: pa.nulls(t.num_rows)})
            names = [c for c in t.column_names if c != _IDX]
            targets = [quote(c) for c in names] + [quote(m) for m in META]
            self.con.register(_REL, t)
            try:
                row = self.con.execute(
                    f"INSERT INTO {quote(self.table)} ({', '.join(targets)}) "
                    f"SELECT {', '.join([quote(c) for c in names] + ['?', '?'])} FROM {_REL}",
                    [self.pipeline, self.object_key]).fetchone()
            finally:
                self.con.unregister(_REL)
            count += row[0] if row else t.num_rows
        return count

    def delete_object(self, key: str) -> int:
        """Remove the rows an earlier run of this pipeline wrote for object ``key``."""
        self.flush()
        if not self._columns():
            return 0
        rows = self.con.execute(
            f"DELETE FROM {quote(self.table)} WHERE _headwater_pipeline = ? "
            "AND _headwater_object = ?", [self.pipeline, key]).fetchall()
        return int(rows[0][0]) if rows else 0
