"""The ``enrich`` built-in: per-record and batched lookups."""

from __future__ import annotations

import pytest

from transforms.builtins.enrich import make
from transforms.contract import Context, Retryable, SettingsError

USERS = {
    7: {"user_id": 7, "tier": "gold", "country": "FR"},
    8: {"user_id": 8, "tier": "silver", "country": "DE"},
}


class Table:
    def __init__(self, rows):
        self.rows = rows
        self.calls: list[tuple[str, list]] = []

    def __call__(self, table, keys):
        self.calls.append((table, list(keys)))
        return {k: self.rows[k] for k in keys if k in self.rows}


def ctx(rows=USERS):
    table = Table(rows)
    return Context(pipeline="t", lookup=table), table


def test_single_record_copies_listed_fields():
    c, table = ctx()
    f = make(table="users", key="user_id", fields=["tier"])
    assert f({"user_id": 7, "n": 1}, c) == {"user_id": 7, "n": 1, "tier": "gold"}
    assert table.calls == [("users", [7])]


def test_empty_fields_copy_all_but_key_with_prefix():
    c, _ = ctx()
    f = make(table="users", key="user_id", fields=[], prefix="u_")
    assert f({"user_id": 8}, c) == {"user_id": 8, "u_tier": "silver", "u_country": "DE"}
    g = make(table="users", key="user_id")
    assert g({"user_id": 8}, c) == {"user_id": 8, "tier": "silver", "country": "DE"}


def test_listed_column_absent_from_row_is_not_added():
    c, _ = ctx()
    out = make(table="users", key="user_id", fields=["tier", "age"])({"user_id": 7}, c)
    assert out == {"user_id": 7, "tier": "gold"}


class TypedStore(Table):
    """A store whose key column has one type: it converts the keys asked for and answers
    under its own key type (as DynamoDB or a typed DuckDB column would)."""

    def __init__(self, rows, key_type):
        super().__init__(rows)
        self.key_type = key_type

    def __call__(self, table, keys):
        self.calls.append((table, list(keys)))
        wanted = (self.key_type(k) for k in keys)
        return {k: self.rows[k] for k in wanted if k in self.rows}


def test_int_key_matches_text_keys_and_back():
    f = make(table="users", key="user_id", fields=["tier"])
    text_store = TypedStore({"7": {"tier": "gold"}}, str)
    c = Context(pipeline="t", lookup=text_store)
    assert f({"user_id": 7}, c)["tier"] == "gold"
    assert text_store.calls == [("users", [7])]  # asked with the key as it appears
    assert f.batch([{"user_id": 7}, {"user_id": 8}], c)[0]["tier"] == "gold"
    int_store = TypedStore({7: {"tier": "gold"}}, int)
    c2 = Context(pipeline="t", lookup=int_store)
    assert f({"user_id": "7"}, c2)["tier"] == "gold"
    assert f.batch([{"user_id": "7"}], c2)[0]["tier"] == "gold"


@pytest.mark.parametrize("record", [{"user_id": 99}, {"user_id": None}, {}])
def test_on_missing_keep_drop(record):
    c, _ = ctx()
    assert make(table="users", key="user_id")(dict(record), c) == record
    assert make(table="users", key="user_id", on_missing="drop")(dict(record), c) is None


def test_on_missing_dead_letter():
    c, _ = ctx()
    f = make(table="users", key="user_id", on_missing="dead-letter")
    with pytest.raises(LookupError, match=r"^no row in lookup table 'users' for user_id=99$"):
        f({"user_id": 99}, c)
    with pytest.raises(LookupError, match="'user_id' is missing or null"):
        f({"user_id": None}, c)


def test_null_key_makes_no_lookup():
    c, table = ctx()
    make(table="users", key="user_id")({"x": 1}, c)
    assert table.calls == []


def test_unhashable_key_is_a_record_error():
    c, _ = ctx()
    f = make(table="users", key="user_id")
    with pytest.raises(TypeError, match="'user_id'"):
        f({"user_id": [7]}, c)
    out = f.batch([{"user_id": [7]}, {"user_id": 7}], c)
    assert isinstance(out[0], TypeError)
    assert out[1]["tier"] == "gold"


def test_batch_makes_one_lookup_for_a_thousand_records():
    rows = {k: {"k": k, "v": k * 10} for k in range(10)}
    c, table = ctx(rows)
    f = make(table="t", key="k", fields=["v"])
    records = [{"k": i % 10, "i": i} for i in range(1000)]
    out = f.batch(records, c)
    assert len(table.calls) == 1
    assert sorted(table.calls[0][1]) == list(range(10))
    assert len(out) == 1000
    assert all(r["v"] == r["k"] * 10 and r["i"] == i for i, r in enumerate(out))


def test_batch_entries_follow_on_missing_in_order():
    c, table = ctx()
    records = [{"user_id": 7}, {"user_id": 99}, {}, {"user_id": 8}]
    dead = make(table="users", key="user_id", fields=["tier"], on_missing="dead-letter")
    out = dead.batch([dict(r) for r in records], c)
    assert out[0] == {"user_id": 7, "tier": "gold"}
    assert isinstance(out[1], LookupError) and "user_id=99" in str(out[1])
    assert isinstance(out[2], LookupError)
    assert out[3] == {"user_id": 8, "tier": "silver"}
    assert table.calls == [("users", [7, 99, 8])]

    dropped = make(table="users", key="user_id", fields=["tier"], on_missing="drop")
    assert dropped.batch([dict(r) for r in records], c)[1:3] == [None, None]
    kept = make(table="users", key="user_id", fields=["tier"])
    assert kept.batch([dict(r) for r in records], c)[1:3] == [{"user_id": 99}, {}]


def test_batch_without_keys_makes_no_lookup():
    c, table = ctx()
    assert make(table="users", key="user_id").batch([{}, {"user_id": None}], c) == [{}, {"user_id": None}]
    assert make(table="users", key="user_id").batch([], c) == []
    assert table.calls == []


@pytest.mark.parametrize("error", [Retryable("throttled"), RuntimeError("store down")])
def test_lookup_errors_propagate(error):
    def failing(table, keys):
        raise error

    c = Context(pipeline="t", lookup=failing)
    f = make(table="users", key="user_id", on_missing="dead-letter")
    with pytest.raises(type(error)):
        f.batch([{"user_id": 7}], c)
    with pytest.raises(type(error)):
        f({"user_id": 7}, c)


@pytest.mark.parametrize(
    ("settings", "setting"),
    [
        ({"table": "", "key": "k"}, "table"),
        ({"table": 1, "key": "k"}, "table"),
        ({"table": "t", "key": None}, "key"),
        ({"table": "t", "key": "k", "fields": "a"}, "fields"),
        ({"table": "t", "key": "k", "fields": ["a", "a"]}, "fields"),
        ({"table": "t", "key": "k", "prefix": 3}, "prefix"),
        ({"table": "t", "key": "k", "on_missing": "skip"}, "on_missing"),
    ],
)
def test_settings(settings, setting):
    with pytest.raises(SettingsError) as info:
        make(**settings)
    assert info.value.setting == setting
