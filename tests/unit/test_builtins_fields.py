"""The field-shaping built-ins: normalize, require, rename, drop."""

from __future__ import annotations

import pytest

from transforms.builtins import drop, normalize, rename, require
from transforms.contract import Context, SettingsError

CTX = Context(pipeline="t")


# --- normalize ---------------------------------------------------------------------------


def test_normalize_single_and_chained_ops():
    f = normalize.make(fields={"category": "upper", "email": ["strip", "lower"],
                               "name": "collapse", "title": ["collapse", "title"]})
    out = f({"category": "books", "email": "  Ann@X.ORG ", "name": " Ann \t  Lee\n",
             "title": "the  GREAT   gatsby", "other": " x "}, CTX)
    assert out == {"category": "BOOKS", "email": "ann@x.org", "name": "Ann Lee",
                   "title": "The Great Gatsby", "other": " x "}


def test_normalize_ops_apply_in_order():
    # title then upper -> all upper; upper then title -> title case
    assert normalize.make(fields={"a": ["title", "upper"]})({"a": "ab cd"}, CTX) == {"a": "AB CD"}
    assert normalize.make(fields={"a": ["upper", "title"]})({"a": "ab cd"}, CTX) == {"a": "Ab Cd"}


def test_normalize_leaves_non_strings_and_missing_fields_alone():
    f = normalize.make(fields={"a": "upper", "b": "strip", "c": "lower", "d": "upper"})
    out = f({"a": None, "b": 12, "c": ["X"]}, CTX)
    assert out == {"a": None, "b": 12, "c": ["X"]}
    assert "d" not in out


@pytest.mark.parametrize(
    "fields",
    [{}, {"a": "shout"}, {"a": []}, {"a": ["strip", 3]}, {"a": 5}, ["a"], "a", {"": "upper"}],
)
def test_normalize_settings(fields):
    with pytest.raises(SettingsError) as info:
        normalize.make(fields=fields)
    assert info.value.setting == "fields"


def test_normalize_unknown_op_lists_known_ones():
    with pytest.raises(SettingsError, match="uper.*strip, upper, lower, title, collapse"):
        normalize.make(fields={"a": "uper"})


# --- require -----------------------------------------------------------------------------


def test_require_passes_complete_records_unchanged():
    f = require.make(fields=["a", "b"])
    record = {"a": 0, "b": "", "c": None}
    assert f(record, CTX) is record
    assert record == {"a": 0, "b": "", "c": None}


def test_require_lists_every_missing_field_in_order():
    f = require.make(fields=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"^missing required field\(s\): a, c$"):
        f({"b": 1, "c": None}, CTX)


def test_require_empty_string_counts_only_when_asked():
    assert require.make(fields=["a"])({"a": ""}, CTX) == {"a": ""}
    strict = require.make(fields=["a", "b"], allow_empty_string=False)
    with pytest.raises(ValueError, match=r"missing required field\(s\): a$"):
        strict({"a": "", "b": "x"}, CTX)
    assert strict({"a": 0, "b": False}, CTX) == {"a": 0, "b": False}


@pytest.mark.parametrize(
    ("settings", "setting"),
    [
        ({"fields": []}, "fields"),
        ({"fields": "a"}, "fields"),
        ({"fields": ["a", "a"]}, "fields"),
        ({"fields": ["a", 1]}, "fields"),
        ({"fields": ["a"], "allow_empty_string": "no"}, "allow_empty_string"),
    ],
)
def test_require_settings(settings, setting):
    with pytest.raises(SettingsError) as info:
        require.make(**settings)
    assert info.value.setting == setting


# --- rename ------------------------------------------------------------------------------


def test_rename_moves_values_and_ignores_missing_fields():
    f = rename.make(fields={"uid": "user_id", "amt": "amount", "gone": "here"})
    assert f({"uid": 7, "amt": 1.5, "x": 1}, CTX) == {"x": 1, "user_id": 7, "amount": 1.5}


def test_rename_refuses_to_overwrite_and_leaves_record_untouched():
    f = rename.make(fields={"a": "x", "b": "c"})
    record = {"a": 1, "b": 2, "c": 3}
    with pytest.raises(ValueError, match="'b'.*'c'.*already exists"):
        f(record, CTX)
    assert record == {"a": 1, "b": 2, "c": 3}


def test_rename_swap_and_chain():
    swap = rename.make(fields={"a": "b", "b": "a"})
    assert swap({"a": 1, "b": 2}, CTX) == {"b": 1, "a": 2}
    chain = rename.make(fields={"a": "b", "b": "c"})
    assert chain({"a": 1, "b": 2}, CTX) == {"b": 1, "c": 2}
    # b is not present, so it is not moved away: a -> b is fine
    assert chain({"a": 1}, CTX) == {"b": 1}


def test_rename_chain_still_refuses_overwrite():
    chain = rename.make(fields={"a": "b", "b": "c"})
    record = {"b": 2, "c": 3}
    with pytest.raises(ValueError, match="'b' to 'c'"):
        chain(record, CTX)
    assert record == {"b": 2, "c": 3}


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"a": "x", "b": "x"}, "both 'a' and 'b' are renamed to 'x'"),
        ({"a": "a"}, "renamed to itself"),
        ({"a": ""}, "non-empty string"),
        ({"a": 3}, "non-empty string"),
        ({}, "must not be empty"),
        ([("a", "b")], "must be a mapping"),
    ],
)
def test_rename_settings(fields, reason):
    with pytest.raises(SettingsError, match=reason) as info:
        rename.make(fields=fields)
    assert info.value.setting == "fields"


# --- drop --------------------------------------------------------------------------------


def test_drop_fields():
    f = drop.make(fields=["password", "ssn", "absent"])
    record = {"id": 1, "password": "p", "ssn": "s"}
    assert f(record, CTX) is record
    assert record == {"id": 1}


def test_drop_keep_only():
    f = drop.make(keep=["id", "amount", "absent"])
    assert f({"id": 1, "amount": 5, "note": "n", "x": None}, CTX) == {"id": 1, "amount": 5}


@pytest.mark.parametrize(
    ("settings", "setting"),
    [
        ({}, "fields"),
        ({"fields": ["a"], "keep": ["b"]}, "keep"),
        ({"fields": []}, "fields"),
        ({"keep": []}, "keep"),
        ({"keep": "id"}, "keep"),
        ({"fields": [None]}, "fields"),
    ],
)
def test_drop_settings(settings, setting):
    with pytest.raises(SettingsError) as info:
        drop.make(**settings)
    assert info.value.setting == setting
