"""Discovery of transform plugins through the ``headwater.transforms`` entry-point group.

Discovery runs at plan / package / local-run time only. A deployed function never
scans package metadata: it imports the ``module:attr`` baked into its manifest.

Load failures are a policy of the caller (as in stevedore): :meth:`Registry.get` and
:meth:`Registry.build` raise, :meth:`Registry.describe` reports the error and goes on,
so ``headwater transforms list`` still shows every healthy plugin.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from .contract import SettingsError, Transform, import_ref, instantiate

GROUP = "headwater.transforms"

__all__ = [
    "GROUP",
    "Plugin",
    "PluginConflictError",
    "PluginImportError",
    "PluginSettingsError",
    "Registry",
    "RegistryError",
    "UnknownTransformError",
    "default_registry",
]


class RegistryError(Exception):
    """Base of every registry error; the message says what to do."""


class UnknownTransformError(RegistryError, LookupError):
    def __init__(self, name: str, known: Iterable[str], where: str = "") -> None:
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        at = f"{where}: " if where else ""
        super().__init__(
            f"{at}unknown transform {name!r}.{hint} Installed: {', '.join(known) or 'none'}. "
            f"A plugin adds one through the {GROUP!r} entry-point group."
        )
        self.name = name
        self.close_matches = close


class PluginConflictError(RegistryError):
    def __init__(self, name: str, claims: list[Plugin]) -> None:
        who = ", ".join(f"{p.distribution} ({p.ref})" for p in claims)
        super().__init__(
            f"transform {name!r} is claimed by more than one distribution: {who}. "
            "Uninstall one of them or rename its entry point."
        )
        self.name = name
        self.distributions = [p.distribution for p in claims]


class PluginImportError(RegistryError, ImportError):
    def __init__(self, plugin: Plugin, cause: BaseException) -> None:
        super().__init__(
            f"transform {plugin.name!r} (entry point {plugin.name} = {plugin.ref}, "
            f"distribution {plugin.distribution} {plugin.version}) failed to import: "
            f"{type(cause).__name__}: {cause}"
        )
        self.plugin = plugin
        self.__cause__ = cause


class PluginSettingsError(RegistryError, ValueError):
    def __init__(self, where: str, name: str, error: SettingsError) -> None:
        # "*": the transform's shape, not one setting, is at fault
        what = "" if error.setting == "*" else f"setting {error.setting!r}: "
        super().__init__(f"{where} ({name}): {what}{error.reason}")
        self.where = where
        self.transform = name
        self.setting = error.setting
        self.reason = error.reason


@dataclass
class Plugin:
    """One entry point: ``name = ref`` registered by ``distribution``."""

    name: str
    ref: str  # "package.module:attr"
    distribution: str = "(in-memory)"
    version: str = ""
    obj: Any = field(default=None, repr=False)

    @property
    def module(self) -> str:
        return self.ref.partition(":")[0]

    @property
    def attr(self) -> str:
        return self.ref.partition(":")[2]

    def load(self) -> Any:
        if self.obj is None:
            try:
                target = import_ref(self.ref)
            except Exception as exc:  # any failure of a plugin's import is reported, never hidden
                raise PluginImportError(self, exc) from exc
            self.obj = target
        return self.obj

    def summary(self) -> str:
        doc = (getattr(self.obj, "__doc__", None) or "").strip()
        if not doc and self.obj is not None:
            doc = (getattr(importlib.import_module(self.module), "__doc__", None) or "").strip()
        return doc.splitlines()[0] if doc else ""


class Registry:
    """Name -> plugin. Build one from entry points (:func:`default_registry`) or from a
    dict in tests (:meth:`from_objects`)."""

    def __init__(self, plugins: Iterable[Plugin]) -> None:
        self._claims: dict[str, list[Plugin]] = {}
        for p in plugins:
            claims = self._claims.setdefault(p.name, [])
            # an editable install can expose the same distribution twice: not a conflict
            if not any(c.distribution == p.distribution and c.ref == p.ref for c in claims):
                claims.append(p)

    @classmethod
    def from_objects(cls, objects: Mapping[str, Any], distribution: str = "(in-memory)") -> Registry:
        return cls(
            Plugin(name, f"{getattr(o, '__module__', '?')}:{getattr(o, '__qualname__', name)}",
                   distribution, "", o)
            for name, o in objects.items()
        )

    @classmethod
    def from_entry_points(cls) -> Registry:
        from importlib.metadata import entry_points

        plugins = []
        for ep in entry_points(group=GROUP):
            dist = getattr(ep, "dist", None)
            plugins.append(
                Plugin(
                    ep.name,
                    ep.value.replace(" ", ""),
                    dist.metadata["Name"] if dist is not None else "(unknown)",
                    dist.version if dist is not None else "",
                )
            )
        return cls(plugins)

    def names(self) -> list[str]:
        return sorted(self._claims)

    def __contains__(self, name: str) -> bool:
        return name in self._claims

    def claims(self, name: str) -> list[Plugin]:
        """Every plugin claiming ``name`` (none, one, or several in a conflict)."""
        return list(self._claims.get(name, ()))

    def plugin(self, name: str, where: str = "") -> Plugin:
        """The unique plugin for ``name``, not loaded yet."""
        claims = self._claims.get(name)
        if not claims:
            raise UnknownTransformError(name, self._claims, where)
        if len(claims) > 1:
            raise PluginConflictError(name, claims)
        return claims[0]

    def get(self, name: str, where: str = "") -> Plugin:
        """The plugin for ``name``, imported. Raises on unknown, conflict or import error."""
        plugin = self.plugin(name, where)
        plugin.load()
        return plugin

    def build(self, name: str, settings: Mapping[str, Any] | None = None, *,
              pipeline: str = "", step: int | None = None) -> Transform:
        """Import ``name`` and apply its settings; errors name pipeline, step and setting."""
        where = _where(pipeline, step)
        plugin = self.get(name, where)
        try:
            return instantiate(plugin.obj, settings, name)
        except SettingsError as exc:
            raise PluginSettingsError(where or "transform", name, exc) from exc

    def describe(self) -> list[dict[str, Any]]:
        """One row per claim, for listings: never raises, errors go in the row."""
        rows = []
        for name in self.names():
            for p in self._claims[name]:
                row = {"name": name, "distribution": p.distribution, "version": p.version,
                       "target": p.ref, "doc": "", "error": ""}
                if len(self._claims[name]) > 1:
                    row["error"] = "conflict: " + ", ".join(c.distribution for c in self._claims[name])
                try:
                    p.load()
                    row["doc"] = p.summary()
                except RegistryError as exc:
                    row["error"] = str(exc)
                rows.append(row)
        return rows


def _where(pipeline: str, step: int | None) -> str:
    parts = []
    if pipeline:
        parts.append(f"pipeline {pipeline!r}")
    if step is not None:
        parts.append(f"step {step}")
    return ", ".join(parts)


@cache
def default_registry() -> Registry:
    """The registry of installed distributions, scanned once per process."""
    return Registry.from_entry_points()
