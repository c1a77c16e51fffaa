"""The ``schema`` built-in: coercion to declared types."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest

from transforms.builtins.schema import make
from transforms.contract import Context, SettingsError

CTX = Context(pipeline="t")


def coerce(type_, value):
    return make(fields={"x": type_})({"x": value}, CTX)["x"]


@pytest.mark.parametrize(
    ("type_", "value", "expected"),
    [
        ("int", 12, 12),
        ("int", "12", 12),
        ("int", " -12 ", -12),
        ("int", 12.0, 12),
        ("int", "12.0", 12),
        ("int", Decimal("3"), 3),
        ("float", 1, 1.0),
        ("float", "1.5", 1.5),
        ("float", 2.25, 2.25),
        ("float", Decimal("0.1"), 0.1),
        ("decimal", "19.990", "19.990"),
        ("decimal", " 0.10 ", "0.10"),
        ("decimal", 19.99, "19.99"),
        ("decimal", 0.1 + 0.2, "0.30000000000000004"),
        ("decimal", 7, "7"),
        ("decimal", "1e3", "1000"),
        ("decimal", Decimal("1.50"), "1.50"),
        ("str", "a", "a"),
        ("str", 12, "12"),
        ("str", 1.5, "1.5"),
        ("str", True, "true"),
        ("str", Decimal("1.0"), "1.0"),
        ("bool", True, True),
        ("bool", False, False),
        ("bool", "TRUE", True),
        ("bool", " yes ", True),
        ("bool", "No", False),
        ("bool", "1", True),
        ("bool", "0", False),
        ("bool", 1, True),
        ("bool", 0, False),
        ("timestamp", "2024-05-01T14:00:00+02:00", "2024-05-01T12:00:00Z"),
        ("timestamp", 1714564800000, "2024-05-01T12:00:00Z"),
        ("timestamp", "2024-05-01", "2024-05-01T00:00:00Z"),
    ],
)
def test_coercions(type_, value, expected):
    out = coerce(type_, value)
    assert out == expected
    assert type(out) is type(expected)


@pytest.mark.parametrize(
    ("type_", "value"),
    [
        ("int", "1.5"),
        ("int", 12.5),
        ("int", True),
        ("int", "x"),
        ("int", "1_000"),
        ("int", float("inf")),
        ("int", "1e999999"),
        ("int", [1]),
        ("float", "nan"),
        ("float", "abc"),
        ("float", False),
        ("float", 10**400),
        ("float", {"a": 1}),
        ("decimal", "1,234.50"),
        ("decimal", "NaN"),
        ("decimal", float("inf")),
        ("decimal", True),
        ("decimal", "1e999999"),
        ("str", {"a": 1}),
        ("str", [1, 2]),
        ("bool", "maybe"),
        ("bool", 2),
        ("bool", 1.0),
        ("timestamp", "yesterday"),
        ("timestamp", True),
    ],
)
def test_misfits_name_field_type_and_value(type_, value):
    with pytest.raises(ValueError) as info:
        coerce(type_, value)
    message = str(info.value)
    assert message.startswith(f"field 'x': expected {type_}, got ")


def test_misfit_message_exact_and_truncated():
    with pytest.raises(ValueError, match=r"^field 'qty': expected int, got '1\.5'$"):
        make(fields={"qty": "int"})({"qty": "1.5"}, CTX)
    with pytest.raises(ValueError) as info:
        make(fields={"qty": "int"})({"qty": "z" * 500}, CTX)
    assert len(str(info.value)) < 120
    assert str(info.value).endswith("...")


def test_output_is_json_safe():
    f = make(fields={"a": "decimal", "b": "timestamp", "c": "int", "d": "bool"})
    out = f({"a": Decimal("19.990"), "b": 1714564800, "c": "3", "d": "yes"}, CTX)
    assert orjson.loads(orjson.dumps(out)) == {"a": "19.990", "b": "2024-05-01T12:00:00Z",
                                               "c": 3, "d": True}


def test_none_passes_and_missing_is_skipped_when_not_required():
    f = make(fields={"a": "int", "b": "int"})
    assert f({"a": None}, CTX) == {"a": None}


def test_required_reports_missing_and_null_fields():
    f = make(fields={"a": "int", "b": "int", "c": "str"}, required=True)
    with pytest.raises(ValueError, match=r"missing required field\(s\): a, c$"):
        f({"a": None, "b": "1"}, CTX)
    assert f({"a": "1", "b": 2, "c": 3}, CTX) == {"a": 1, "b": 2, "c": "3"}


def test_extra_keep_drop_error():
    record = {"a": "1", "z": 9}
    assert make(fields={"a": "int"})(dict(record), CTX) == {"a": 1, "z": 9}
    assert make(fields={"a": "int"}, extra="drop")(dict(record), CTX) == {"a": 1}
    with pytest.raises(ValueError, match="unexpected field\\(s\\): z"):
        make(fields={"a": "int"}, extra="error")(dict(record), CTX)


def test_failed_record_is_left_untouched():
    f = make(fields={"a": "int", "b": "int"}, extra="drop")
    record = {"a": "1", "b": "x", "z": 0}
    with pytest.raises(ValueError, match="'b'"):
        f(record, CTX)
    assert record == {"a": "1", "b": "x", "z": 0}


@pytest.mark.parametrize(
    ("settings", "setting"),
    [
        ({"fields": {}}, "fields"),
        ({"fields": {"a": "integer"}}, "fields"),
        ({"fields": {"a": int}}, "fields"),
        ({"fields": ["a"]}, "fields"),
        ({"fields": {"a": "int"}, "required": "yes"}, "required"),
        ({"fields": {"a": "int"}, "extra": "ignore"}, "extra"),
    ],
)
def test_settings(settings, setting):
    with pytest.raises(SettingsError) as info:
        make(**settings)
    assert info.value.setting == setting


def test_unknown_type_message_lists_known_types():
    with pytest.raises(SettingsError, match="'integer'.*int, float, decimal, str, bool, timestamp"):
        make(fields={"a": "integer"})


# -- null tokens ---------------------------------------------------------------------------------


def test_empty_field_is_null_for_non_string_types_by_default():
    f = make(fields={"n": "int", "x": "float", "d": "decimal", "b": "bool", "t": "timestamp",
                     "s": "str"})
    out = f({"n": "", "x": " ", "d": "", "b": "", "t": "", "s": ""}, CTX)
    assert out == {"n": None, "x": None, "d": None, "b": None, "t": None, "s": ""}


def test_null_tokens_are_not_values_unless_listed():
    with pytest.raises(ValueError, match="field 'n': expected int, got 'NA'"):
        make(fields={"n": "int"})({"n": "NA"}, CTX)
    assert make(fields={"s": "str"})({"s": "NA"}, CTX) == {"s": "NA"}


def test_listed_null_values_become_null_in_every_type():
    f = make(fields={"n": "int", "s": "str", "b": "bool"}, null_values=["NA", "N/A", "null"])
    assert f({"n": "NA", "s": "N/A", "b": " null "}, CTX) == {"n": None, "s": None, "b": None}
    assert f({"n": "", "s": "", "b": "yes"}, CTX) == {"n": None, "s": "", "b": True}
    # tokens match case-sensitively: 'na' is text, not a listed token
    assert f({"s": "na"}, CTX) == {"s": "na"}
    with pytest.raises(ValueError, match="field 'n': expected int, got 'na'"):
        f({"n": "na"}, CTX)


def test_listing_the_empty_field_makes_it_null_in_string_fields_too():
    f = make(fields={"s": "str"}, null_values=[""])
    assert f({"s": ""}, CTX) == {"s": None}


def test_required_counts_a_null_token_as_missing():
    f = make(fields={"n": "int", "s": "str"}, required=True, null_values=["NA"])
    with pytest.raises(ValueError, match=r"missing required field\(s\): n, s$"):
        f({"n": "", "s": "NA"}, CTX)


@pytest.mark.parametrize("value", ["NA", ["NA", 1], [None], ["NA", "NA"]])
def test_null_values_setting_is_checked(value):
    with pytest.raises(SettingsError) as info:
        make(fields={"a": "int"}, null_values=value)
    assert info.value.setting == "null_values"


def test_real_dataset_with_missing_values_goes_through(tmp_path):
    """statsmodels' Mauna Loa CO2 series (tests/data/README.md): 59 of its 2,284 weeks have
    an empty ``co2`` field. Decoded as CSV and coerced, every row fits; the gaps are null."""
    from pathlib import Path

    from runtimes.core.formats import decode

    data = (Path(__file__).parent.parent / "data" / "statsmodels_co2.csv").open("rb")
    f = make(fields={"date": "int", "co2": "float"})
    rows = [f(rec, CTX) for chunk in decode(data, key="co2.csv") for rec in chunk.records]
    assert len(rows) == 2284
    assert sum(r["co2"] is None for r in rows) == 59
    assert rows[0] == {"date": 19580329, "co2": 316.1}
    assert all(isinstance(r["co2"], float) for r in rows if r["co2"] is not None)
