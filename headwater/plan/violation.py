"""What a plan reports: one :class:`Violation` per broken rule, naming the resource, the
rule and the fix."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Violation"]


@dataclass(frozen=True)
class Violation:
    """``rule`` broken by resource ``name`` of type ``typ``: ``message`` says what is
    wrong and where (the property path), ``fix`` what to change."""

    rule: str
    typ: str
    name: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.typ} {self.name!r}: {self.message}. Fix: {self.fix}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
