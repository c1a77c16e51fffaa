"""The ``cents`` built-in: exact decimal amount -> integer cents."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transforms.builtins.cents import make
from transforms.contract import Context, SettingsError

CTX = Context(pipeline="t")


def run(value, **settings):
    return make(**settings)({"value": value}, CTX)


@pytest.mark.parametrize(
    ("value", "cents"),
    [
        (19.99, 1999),
        (0.1 + 0.2, 30),
        ("19.99", 1999),
        (" 19.99 ", 1999),
        (Decimal("19.99"), 1999),
        (7, 700),
        (-3.5, -350),
        ("0", 0),
        ("1e3", 100000),
        (1.005, 101),  # the float's shortest repr is "1.005", rounded half up
    ],
)
def test_converts_exactly(value, cents):
    assert run(value) == {"value_cents": cents}


def test_result_is_an_int():
    assert type(run("12.50")["value_cents"]) is int


def test_source_removed_by_default_and_kept_on_request():
    assert "value" not in run(1)
    assert make(keep_source=True)({"value": "1.25"}, CTX) == {"value": "1.25", "value_cents": 125}


def test_custom_source_target_and_other_fields_untouched():
    out = make(source="price", target="price_c")({"price": "2.10", "sku": "A"}, CTX)
    assert out == {"sku": "A", "price_c": 210}


def test_same_source_and_target_overwrites_in_place():
    assert make(source="v", target="v")({"v": "1.10"}, CTX) == {"v": 110}


def test_returns_the_input_record_mutated():
    record = {"value": "1.00"}
    assert make()(record, CTX) is record


def test_rounding_modes():
    assert run("0.125")["value_cents"] == 13
    assert run("0.125", round="half_even")["value_cents"] == 12
    assert run("0.135", round="half_even")["value_cents"] == 14
    assert run("-0.125")["value_cents"] == -13


def test_scale():
    assert run("1.2345", scale=3)["value_cents"] == 1235
    assert run("2.5", scale=0)["value_cents"] == 3
    assert run(4, scale=0)["value_cents"] == 4


@pytest.mark.parametrize(
    "value", ["1,234.50", "1_000", "", "abc", "nan", "Infinity", float("nan"), float("inf"),
              Decimal("NaN"), "1e999", "١٢"],
)
def test_bad_values_name_the_field(value):
    with pytest.raises(ValueError, match="'value'"):
        run(value)


@pytest.mark.parametrize("value", [True, False, [1], {"a": 1}, object()])
def test_wrong_types_name_the_field(value):
    with pytest.raises(TypeError, match="'value'"):
        run(value)


def test_missing_and_null_source():
    with pytest.raises(ValueError, match="field 'price' is missing"):
        make(source="price")({"value": 1}, CTX)
    with pytest.raises(ValueError, match="field 'price' is null"):
        make(source="price")({"price": None}, CTX)


def test_failed_record_is_not_mutated():
    record = {"value": "x"}
    with pytest.raises(ValueError):
        make()(record, CTX)
    assert record == {"value": "x"}


@pytest.mark.parametrize(
    ("settings", "setting"),
    [
        ({"source": 5}, "source"),
        ({"source": ""}, "source"),
        ({"target": None}, "target"),
        ({"keep_source": "yes"}, "keep_source"),
        ({"round": "down"}, "round"),
        ({"scale": "2"}, "scale"),
        ({"scale": -1}, "scale"),
        ({"scale": 19}, "scale"),
        ({"scale": True}, "scale"),
    ],
)
def test_settings_are_validated(settings, setting):
    with pytest.raises(SettingsError) as info:
        make(**settings)
    assert info.value.setting == setting


amounts = st.decimals(
    min_value=Decimal("-1000000000000"), max_value=Decimal("1000000000000"),
    places=2, allow_nan=False, allow_infinity=False,
)


@given(amounts)
def test_property_text_and_float_inputs_are_exact(d):
    expected = int(d * 100)
    assert run(str(d))["value_cents"] == expected
    assert run(float(str(d)))["value_cents"] == expected
