"""Which distributions a pipeline's function needs, pinned to the builder's versions.

Roots: the distribution of every step's plugin (from the baked manifest), ``orjson``
(the engine's codec) and ``pyarrow`` when the source may be Parquet. From there the
``Requires-Dist`` of each installed distribution is followed, with markers evaluated for
the *target* (Linux, the function's Python and machine), not for the builder. Versions
are the ones installed where the build runs, so the same environment gives the same
artifact. Distributions the platform provides (boto3 on Lambda) are neither packaged
nor followed: their own requirements come in only if something else asks for them.
"""

from __future__ import annotations

import importlib.metadata as md
from collections import deque
from dataclasses import dataclass
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .errors import PackagingError
from .layouts import Target

__all__ = ["HEADWATER", "Need", "resolve", "resolve_roots"]

HEADWATER = "headwater"
PARQUET_FORMATS = ("parquet", "auto")


@dataclass(frozen=True)
class Need:
    """One distribution to put in the artifact."""

    name: str  # canonical name
    project: str  # name as its metadata spells it
    version: str
    required_by: str  # for messages: "transform 'geo'", "geo-dist <- transform 'geo'"
    plugin: str  # the transform that pulled it in, "" for the runtime's own needs
    dist: md.Distribution


def _installed(name: str, required_by: str) -> md.Distribution:
    try:
        return md.distribution(name)
    except md.PackageNotFoundError:
        raise PackagingError(
            f"{name} (needed by {required_by}) is not installed where `headwater package` "
            f"runs; install it (pip install {name}) so its version can be pinned"
        ) from None


def roots(manifest: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(distribution, required_by, plugin)`` for a manifest's steps and source format."""
    out: list[tuple[str, str, str]] = [("orjson", "the headwater engine", "")]
    fmt = manifest["pipeline"]["source"].get("format", "ndjson")
    if fmt in PARQUET_FORMATS:
        out.append(("pyarrow", f"source format {fmt!r} (Parquet objects)", ""))
    for step in manifest["steps"]:
        dist = step.get("distribution") or ""
        if canonicalize_name(dist) != HEADWATER:
            out.append((dist, f"transform {step['use']!r}", step["use"]))
    return out


def resolve(manifest: dict[str, Any], target: Target,
            provided: frozenset[str] = frozenset(),
            runtime: tuple[str, ...] = ()) -> list[Need]:
    """The requirement closure of ``manifest`` plus the adapter's own ``runtime``
    distributions (SDKs the platform does not provide), sorted by name."""
    return resolve_roots([*roots(manifest), *((n, "the function adapter", "") for n in runtime)],
                         target, provided)


def resolve_roots(wanted: list[tuple[str, str, str]], target: Target,
                  provided: frozenset[str] = frozenset()) -> list[Need]:
    """The requirement closure of ``(distribution, required_by, plugin)`` roots, sorted."""
    skip = {canonicalize_name(n) for n in provided} | {HEADWATER}
    found: dict[str, Need] = {}
    extras_seen: dict[str, set[str]] = {}
    queue: deque[tuple[str, frozenset[str], str, str]] = deque(
        (name, frozenset(), why, plugin) for name, why, plugin in wanted)
    while queue:
        name, extras, why, plugin = queue.popleft()
        key = canonicalize_name(name)
        if key in skip:
            continue
        done = extras_seen.setdefault(key, set())
        if key in found and extras <= done:
            continue
        done |= extras
        if key not in found:
            dist = _installed(name, why)
            found[key] = Need(key, dist.metadata["Name"], dist.version, why, plugin, dist)
        need = found[key]
        for line in need.dist.requires or []:
            try:
                req = Requirement(line)
            except InvalidRequirement as exc:
                raise PackagingError(f"{need.project} {need.version} has an invalid "
                                     f"requirement {line!r}: {exc}") from None
            wanted = [""] + sorted(extras_seen[key])
            if req.marker is not None and not any(
                    req.marker.evaluate(target.markers(e)) for e in wanted):
                continue
            queue.append((req.name, frozenset(req.extras), f"{need.project} <- {need.required_by}",
                          need.plugin))
    return sorted(found.values(), key=lambda n: n.name)
