"""The ``timestamp`` built-in and its ``to_utc_iso`` helper."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from transforms.builtins.timestamp import make, parse_tz, to_utc_iso
from transforms.contract import Context, SettingsError

CTX = Context(pipeline="t")
NOON = "2024-05-01T12:00:00Z"


@pytest.mark.parametrize(
    "value",
    [
        "2024-05-01T12:00:00Z",
        "2024-05-01T12:00:00z",
        "2024-05-01T14:00:00+02:00",
        "2024-05-01T07:30:00-04:30",
        "2024-05-01 12:00:00",
        " 2024-05-01T12:00:00.000Z ",
        "1714564800",
        "1714564800000",
        "1714564800000000",
        1714564800,
        1714564800000,
        1714564800000000,
        1714564800.0,
        Decimal("1714564800"),
        datetime(2024, 5, 1, 12),
        datetime(2024, 5, 1, 14, tzinfo=timezone(timedelta(hours=2))),
    ],
)
def test_to_utc_iso_accepts(value):
    assert to_utc_iso(value) == NOON


def test_date_only_and_fractions():
    assert to_utc_iso("2024-05-01") == "2024-05-01T00:00:00Z"
    assert to_utc_iso(date(2024, 5, 1)) == "2024-05-01T00:00:00Z"
    assert to_utc_iso(1714564800123) == "2024-05-01T12:00:00.123000Z"
    assert to_utc_iso(1714564800.5) == "2024-05-01T12:00:00.500000Z"
    assert to_utc_iso("1714564800.25") == "2024-05-01T12:00:00.250000Z"
    assert to_utc_iso("2024-05-01T12:00:00.000001Z") == "2024-05-01T12:00:00.000001Z"
    assert to_utc_iso(-1) == "1969-12-31T23:59:59Z"


def test_explicit_units():
    assert to_utc_iso(1714564800, unit="s") == NOON
    assert to_utc_iso(1714564800000, unit="ms") == NOON
    assert to_utc_iso(1714564800000000, unit="us") == NOON
    assert to_utc_iso(1000, unit="ms") == "1970-01-01T00:00:01Z"


def test_assume_tz_for_naive_values_only():
    assert to_utc_iso("2024-05-01 14:00:00", assume_tz="+02:00") == NOON
    assert to_utc_iso("2024-05-01 14:00:00", assume_tz=timezone(timedelta(hours=2))) == NOON
    assert to_utc_iso("2024-05-01T12:00:00Z", assume_tz="+02:00") == NOON
    assert to_utc_iso("2024-05-01 06:30", assume_tz="-0530") == NOON


def test_assume_tz_zone_name():
    pytest.importorskip("zoneinfo")
    try:
        parse_tz("Europe/Paris")
    except ValueError:
        pytest.skip("no tz database on this machine")
    assert to_utc_iso("2024-07-01 14:00", assume_tz="Europe/Paris") == NOON.replace("05", "07")
    assert to_utc_iso("2024-01-01 13:00", assume_tz="Europe/Paris") == "2024-01-01T12:00:00Z"


@pytest.mark.parametrize(
    "value", ["yesterday", "", "2024-13-01", "1e5", float("nan"), "99999999999999999999999",
              10**30, "0001-01-01T00:00:00+01:00"],
)
def test_to_utc_iso_rejects_values(value):
    with pytest.raises(ValueError):
        to_utc_iso(value)


@pytest.mark.parametrize("value", [True, [1], {"a": 1}])
def test_to_utc_iso_rejects_types(value):
    with pytest.raises(TypeError, match="not a timestamp"):
        to_utc_iso(value)


def test_parse_tz():
    assert parse_tz("UTC") is UTC
    assert parse_tz("Z") is UTC
    assert parse_tz("-03:00").utcoffset(None) == timedelta(hours=-3)
    with pytest.raises(ValueError, match="unknown time zone"):
        parse_tz("Mars/Olympus")
    with pytest.raises(ValueError, match="out of range"):
        parse_tz("+25:00")


def test_transform_single_field_in_place_and_to_target():
    record = {"at": "2024-05-01 14:00", "x": 1}
    assert make(field="at", assume_tz="+02:00")(record, CTX) is record
    assert record == {"at": NOON, "x": 1}
    out = make(field="at", target="at_utc")({"at": 1714564800}, CTX)
    assert out == {"at": 1714564800, "at_utc": NOON}


def test_transform_several_fields_and_unit():
    f = make(fields=["a", "b", "c"], unit="ms")
    assert f({"a": 1714564800000, "b": None}, CTX) == {"a": NOON, "b": None}


def test_transform_errors_name_the_field_and_keep_record():
    f = make(fields=["a", "b"])
    record = {"a": 1714564800, "b": "soon"}
    with pytest.raises(ValueError, match=r"^field 'b': not a timestamp: 'soon'$"):
        f(record, CTX)
    assert record == {"a": 1714564800, "b": "soon"}
    with pytest.raises(TypeError, match="field 'a'"):
        make(field="a")({"a": True}, CTX)


@pytest.mark.parametrize(
    ("settings", "setting"),
    [
        ({}, "field"),
        ({"field": "a", "fields": ["b"]}, "fields"),
        ({"field": 3}, "field"),
        ({"fields": []}, "fields"),
        ({"fields": ["a"], "target": "b"}, "target"),
        ({"field": "a", "target": ""}, "target"),
        ({"field": "a", "unit": "ns"}, "unit"),
        ({"field": "a", "assume_tz": "Nowhere/Land"}, "assume_tz"),
        ({"field": "a", "assume_tz": 2}, "assume_tz"),
    ],
)
def test_settings(settings, setting):
    with pytest.raises(SettingsError) as info:
        make(**settings)
    assert info.value.setting == setting
