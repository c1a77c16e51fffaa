"""Check the inputs a program registered against the provider SDK's real input types.

Pulumi mocks accept anything, so a misspelt nested key (``endpoint_type`` where the wire
wants ``endpointType``, ``retention`` for ``retentionInDays``) would pass every mocked test
and fail only against the cloud. :func:`input_problems` walks a recorded resource's inputs
(wire names, as the mocks receive them) alongside the ``*Args`` class and its nested input
types, and lists every key the type does not have. Cloud-neutral: works for any Pulumi
Python provider SDK.
"""

from __future__ import annotations

import collections.abc as abc
import typing
from typing import Any

import pulumi._types as pulumi_types

__all__ = ["input_problems"]


def _members(typ: Any) -> list[Any]:
    """The concrete types an annotation admits (unions and Awaitables unwrapped)."""
    origin = typing.get_origin(typ)
    if origin is typing.Union:
        out: list[Any] = []
        for arg in typing.get_args(typ):
            out += _members(arg)
        return out
    if origin is abc.Awaitable:
        return _members(typing.get_args(typ)[0])
    return [typ]


def _check(value: Any, typ: Any, path: str) -> list[str]:
    members = [m for m in _members(typ) if m is not type(None)]
    if isinstance(value, dict):
        objects = [m for m in members if isinstance(m, type) and pulumi_types.is_input_type(m)]
        if not objects:
            return []  # a Mapping[str, ...] or Any: free-form keys
        best: list[str] | None = None
        for cls in objects:
            fields = pulumi_types.input_type_types(cls)
            problems = [f"{path}.{k}: not an input of {cls.__name__} (has: "
                        f"{', '.join(sorted(fields))})" for k in value if k not in fields]
            for k, v in value.items():
                if k in fields:
                    problems += _check(v, fields[k], f"{path}.{k}")
            if not problems:
                return []
            if best is None or len(problems) < len(best):
                best = problems
        return best or []
    if isinstance(value, list):
        for m in members:
            if typing.get_origin(m) in (abc.Sequence, list):
                (item,) = typing.get_args(m) or (Any,)
                out: list[str] = []
                for i, v in enumerate(value):
                    out += _check(v, item, f"{path}[{i}]")
                return out
    return []


def input_problems(inputs: dict[str, Any], args_cls: type, where: str = "") -> list[str]:
    """Every recorded input key (at any depth) that ``args_cls`` and its nested input types
    do not define; ``[]`` when all are known."""
    return _check(inputs, args_cls, where or args_cls.__name__)
