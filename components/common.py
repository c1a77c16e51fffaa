"""Plan-time checks and helpers shared by the cloud components.

Everything here runs while the Pulumi program is planned (``pulumi preview``): a spec that
would loop, overlap or name an argument that does not exist is refused before any cloud
resource is created, with a message that says what to change.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

__all__ = [
    "Location",
    "PlanError",
    "check_no_cycles",
    "check_no_recursion",
    "check_prefix_overlaps",
    "merge_args",
    "overlaps",
    "validate_overrides",
]


class PlanError(pulumi.RunError, ValueError):
    """A spec that cannot be deployed as written.

    A :class:`pulumi.RunError` so that ``pulumi up`` prints the sentence and no traceback,
    and a :class:`ValueError` for code that builds components directly.
    """


@dataclass(frozen=True)
class Location:
    """Where objects are written or read: a bucket (by name, or a stand-in such as
    ``<orders raw bucket>`` for one the pipeline creates) and a key prefix."""

    what: str
    bucket: str
    prefix: str
    suffix: str = ""
    scheme: str = "s3"  # how the cloud writes an object URL: s3, gs, abfss ...

    def __str__(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.prefix}"


def overlaps(a: Location, b: Location) -> bool:
    """True when one object key could match both locations.

    The same rule S3 applies to the filters of one notification configuration: the
    prefixes overlap when one starts with the other, the suffixes when one ends with the
    other (an empty suffix matches every key).
    """
    if a.bucket != b.bucket:
        return False
    if not (a.prefix.startswith(b.prefix) or b.prefix.startswith(a.prefix)):
        return False
    return a.suffix.endswith(b.suffix) or b.suffix.endswith(a.suffix)


def check_no_recursion(pipeline: str, source: Location, outputs: Iterable[Location]) -> None:
    """Refuse a pipeline that writes where its own trigger listens.

    Suffixes are ignored on purpose: an output object that happens not to match the
    source suffix today would loop the day someone widens the suffix.
    """
    for out in outputs:
        probe = Location(out.what, out.bucket, out.prefix, scheme=out.scheme)
        if overlaps(Location(source.what, source.bucket, source.prefix, scheme=source.scheme), probe):
            raise PlanError(
                f"pipeline {pipeline!r}: its {out.what} location {out} overlaps its source "
                f"{source}, so every object it writes there would trigger the pipeline again. "
                f"Write the {out.what} to another bucket, or choose a prefix that neither "
                f"starts with {source.prefix!r} nor is a start of it."
            )


def check_no_cycles(pipelines: Mapping[str, tuple[Location, list[Location]]]) -> None:
    """Refuse pipelines that trigger each other in a ring (A writes where B listens, B
    writes where A listens, ...). A chain A -> B is allowed: feeding a pipeline from
    another's output is a design choice; a ring would run forever.

    ``pipelines`` maps a name to its (source, outputs), as for :func:`check_no_recursion`.
    """
    feeds: dict[str, list[tuple[str, Location]]] = {name: [] for name in pipelines}
    for a, (_, outputs) in pipelines.items():
        for b, (source, _) in pipelines.items():
            if a == b:
                continue
            for out in outputs:
                if overlaps(Location(source.what, source.bucket, source.prefix),
                            Location(out.what, out.bucket, out.prefix)):
                    feeds[a].append((b, out))
                    break

    def ring_from(start: str) -> list[tuple[str, Location]] | None:
        stack = [(start, [])]
        seen: set[str] = set()
        while stack:
            node, path = stack.pop()
            for nxt, out in feeds[node]:
                step = path + [(node, out)]
                if nxt == start:
                    return step
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, step))
        return None

    for name in sorted(pipelines):
        ring = ring_from(name)
        if ring:
            hops = "; ".join(f"{a!r} writes its {out.what} to {out}" for a, out in ring)
            names = " -> ".join([a for a, _ in ring] + [name])
            raise PlanError(
                f"pipelines {names} trigger each other in a ring ({hops}, each under the "
                "next one's source prefix): every object would go round forever. Move one "
                "of these outputs to a bucket or prefix that no pipeline reads."
            )


def check_prefix_overlaps(sources: Mapping[str, Location]) -> None:
    """Refuse two pipelines whose sources overlap in one bucket (one object would trigger
    both, and S3 rejects overlapping filters in one notification configuration)."""
    names = sorted(sources)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            a, b = sources[first], sources[second]
            if overlaps(a, b):
                raise PlanError(
                    f"pipelines {first!r} ({a}{'*' + a.suffix if a.suffix else ''}) and "
                    f"{second!r} ({b}{'*' + b.suffix if b.suffix else ''}) read overlapping keys "
                    f"of bucket {a.bucket}: one object would trigger both. Give them prefixes "
                    "where neither starts with the other, or distinct suffixes."
                )


def _arg_names(args_cls: type) -> list[str]:
    params = inspect.signature(args_cls.__init__).parameters
    return [n for n, p in params.items()
            if n not in ("self", "__self__") and p.kind is p.KEYWORD_ONLY]


def validate_overrides(component: str, overrides: Mapping[str, Any],
                       children: Mapping[str, type]) -> None:
    """Check ``overrides`` (child -> {argument: value}) against the children's real
    argument names, taken from each resource's ``*Args.__init__`` signature."""
    for child, args in overrides.items():
        if child not in children:
            near = difflib.get_close_matches(child, list(children), n=3)
            hint = f" Did you mean {', '.join(near)}?" if near else ""
            raise PlanError(
                f"{component}: overrides name no child {child!r}.{hint} "
                f"Children that take overrides: {', '.join(sorted(children))}."
            )
        if not isinstance(args, Mapping):
            raise PlanError(f"{component}: overrides.{child} must be a mapping of argument "
                            f"names to values, not {type(args).__name__}.")
        known = _arg_names(children[child])
        for key in args:
            if key not in known:
                near = difflib.get_close_matches(key, known, n=3)
                hint = f" Did you mean {', '.join(near)}?" if near else ""
                raise PlanError(
                    f"{component}: overrides.{child}.{key} is not an argument of "
                    f"{children[child].__name__}.{hint}"
                )


def merge_args(base: Mapping[str, Any], override: Mapping[str, Any] | None) -> dict[str, Any]:
    """``base`` with ``override`` merged in: mappings merge key by key (so
    ``environment: {variables: {X: 1}}`` adds a variable), everything else is replaced."""
    out = dict(base)
    for key, value in (override or {}).items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_args(out[key], value)
        else:
            out[key] = value
    return out
