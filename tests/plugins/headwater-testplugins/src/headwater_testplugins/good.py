"""Upper-case one field of a record.

    - use: tp_upper
      with: {field: name}

    {"name": "ada"} -> {"name": "ADA"}
"""

from __future__ import annotations

from typing import Any


def make(*, field: str):
    """Upper-case ``field`` (a healthy plugin)."""
    if not isinstance(field, str) or not field:
        raise ValueError("field: must be a non-empty string")

    def upper(record: dict[str, Any], ctx: Any) -> dict[str, Any]:
        return {**record, field: str(record[field]).upper()}

    return upper


def cents(record: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Claims the built-in name ``cents``: the registry must refuse to choose."""
    return record
