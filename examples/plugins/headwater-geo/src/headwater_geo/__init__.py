"""Country names from ISO 3166-1 alpha-2 codes: {"country": "de"} -> {"country_name": "Germany"}.

A complete headwater transform plugin: a factory with keyword-only settings that returns
``f(record, ctx)``, registered by one entry point in pyproject.toml. It imports nothing
from headwater, so it runs unchanged on every cloud and locally.

    - use: country_name
      with: {field: country, target: country_name, on_unknown: keep}
"""

from __future__ import annotations

from typing import Any

NAMES = {
    "AT": "Austria", "AU": "Australia", "BE": "Belgium", "BR": "Brazil", "CA": "Canada",
    "CH": "Switzerland", "CN": "China", "DE": "Germany", "DK": "Denmark", "ES": "Spain",
    "FI": "Finland", "FR": "France", "GB": "United Kingdom", "IE": "Ireland", "IN": "India",
    "IT": "Italy", "JP": "Japan", "MX": "Mexico", "NL": "Netherlands", "NO": "Norway",
    "NZ": "New Zealand", "PL": "Poland", "PT": "Portugal", "SE": "Sweden", "US": "United States",
}
MODES = ("keep", "null", "error")


def make(*, field: str = "country", target: str = "country_name", on_unknown: str = "keep"):
    """Add the country name for the ISO code in ``field``.

    ``on_unknown``: ``keep`` leaves the target unset, ``null`` sets it to None, ``error``
    fails the record (it goes to the dead-letter).

    >>> make()({"country": "de"}, None)
    {'country': 'de', 'country_name': 'Germany'}
    """
    if on_unknown not in MODES:
        raise ValueError(f"on_unknown: must be one of {', '.join(MODES)}, not {on_unknown!r}")
    if not isinstance(field, str) or not isinstance(target, str):
        raise ValueError("field: field and target must be strings")

    def country_name(record: dict[str, Any], ctx: Any) -> dict[str, Any]:
        code = record.get(field)
        name = NAMES.get(code.strip().upper()) if isinstance(code, str) else None
        if name is not None:
            record[target] = name
        elif on_unknown == "null":
            record[target] = None
        elif on_unknown == "error":
            raise ValueError(f"field {field!r}: unknown country code {code!r}")
        return record

    return country_name
