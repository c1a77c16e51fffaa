"""Helpers shared by the built-ins: setting validators (plan time only) and
:func:`number_text`, the one rule for numbers written as text (per record)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..contract import SettingsError


def number_text(value: str) -> str | None:
    """``value`` stripped, or ``None`` when it is no plain number text: underscores
    (``"1_000"``) and non-ASCII digits are refused, though Python's parsers accept them."""
    text = value.strip()
    if "_" in text or not text.isascii():
        return None
    return text


def type_name(value: Any) -> str:
    return type(value).__name__


def short(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages."""
    try:
        text = repr(value)
    except ValueError:  # an int beyond sys.get_int_max_str_digits()
        return f"<{type_name(value)} too large to show>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def name(setting: str, value: Any) -> str:
    """A non-empty string (a field, table or secret name)."""
    if not isinstance(value, str):
        raise SettingsError(setting, f"must be a string, got {type_name(value)} {short(value)}")
    if not value:
        raise SettingsError(setting, "must not be empty")
    return value


def names(setting: str, value: Any, *, allow_empty: bool = False) -> list[str]:
    """A list of non-empty, distinct strings (a bare string is refused, not split)."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise SettingsError(
            setting, f"must be a list of field names, got {type_name(value)} {short(value)}"
        )
    if not value and not allow_empty:
        raise SettingsError(setting, "must not be empty")
    out: list[str] = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise SettingsError(
                setting, f"item {i} must be a non-empty string, got {type_name(item)} {short(item)}"
            )
        if item in out:
            raise SettingsError(setting, f"{item!r} is listed twice")
        out.append(item)
    return out


def mapping(setting: str, value: Any) -> dict[str, Any]:
    """A non-empty mapping whose keys are non-empty strings."""
    if not isinstance(value, Mapping):
        raise SettingsError(setting, f"must be a mapping, got {type_name(value)} {short(value)}")
    if not value:
        raise SettingsError(setting, "must not be empty")
    for key in value:
        if not isinstance(key, str) or not key:
            raise SettingsError(setting, f"keys must be non-empty strings, got {short(key)}")
    return dict(value)


def flag(setting: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SettingsError(setting, f"must be true or false, got {type_name(value)} {short(value)}")
    return value


def choice(setting: str, value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise SettingsError(
            setting, f"must be one of {', '.join(allowed)}, got {short(value)}"
        )
    return value


def text(setting: str, value: Any) -> str:
    """Any string, empty allowed (a prefix)."""
    if not isinstance(value, str):
        raise SettingsError(setting, f"must be a string, got {type_name(value)} {short(value)}")
    return value
