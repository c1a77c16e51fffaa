"""The plugin contract: what a transform is, what it may return, and what ``ctx`` offers.

A transform is a callable ``f(record, ctx)`` that returns the record (changed or not),
``None`` to drop it, or an iterable of records to fan out. Raising fails that record
only: the engine dead-letters it with the exception, the step and the input record.

A transform with settings is a *factory*: a callable whose parameters are keyword-only
or have defaults (``def make(*, field, mode="upper")``, ``def make(field="category")``)
and which returns the transform. A callable is a record transform only when it takes
exactly two positional parameters without defaults; any other shape given settings is
called as a factory, and without settings it is refused with a message showing both forms.
Factories validate their settings eagerly and raise :class:`SettingsError`, so bad
settings fail ``pulumi preview`` / ``headwater validate``, not the first invocation.

A transform that needs I/O may also offer ``f.batch(records, ctx)``, which returns a
list with one entry per input record: what ``f`` would have returned for it, or an
``Exception`` instance for a record that failed. The engine then calls ``batch`` once
per batch instead of ``f`` once per record (one BatchGetItem instead of N GetItems).

A transform may also offer a vectorised form, ``f.columnar(table, ctx)``, used by the
local runner (``headwater run``) on chunks of records as a ``pyarrow.Table`` (every
record has every column; each column holds one plain type: string, int64, double, bool,
or only nulls). It returns ``(table, errors)``: the table with the step applied to every
row, same rows in the same order, and ``errors`` a dict row index -> ``Exception`` for
the rows the step refuses (they go to the dead-letter as if ``f`` had raised). It may
return ``None`` to decline a table; the engine then runs ``f`` per record from this step
on. The results must be exactly ``f``'s, row for row: a vectorised form may hand the
rows it cannot compute exactly to ``f`` itself. It never drops or fans out rows. Import
pyarrow inside it: the cloud functions run ``f`` and do not ship pyarrow.

Raising :class:`Retryable` (from ``f`` or ``f.batch``) means "the platform should try
the whole invocation again": the engine does not dead-letter, it re-raises.

This module imports nothing from headwater's other layers: plugins depend on it alone.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "Context",
    "Lookup",
    "import_ref",
    "Metrics",
    "Retryable",
    "SettingsError",
    "Source",
    "Transform",
    "is_factory",
    "factory",
]

Record = dict[str, Any]
Result = Record | None | Iterable[Record]


class SettingsError(ValueError):
    """A factory refused a setting. ``setting`` names it; the message says why."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}")
        self.setting = setting
        self.reason = message


class Retryable(Exception):
    """An error the platform should retry (throttling, an unreachable store).

    The engine never dead-letters records for it: the invocation fails and the
    platform redelivers the event, so nothing is lost.
    """


@dataclass(slots=True)
class Source:
    """Where the record being processed came from."""

    bucket: str = ""
    key: str = ""
    line: int = 0


class Lookup(Protocol):
    def __call__(self, table: str, keys: Sequence[Hashable]) -> Mapping[Hashable, Mapping[str, Any]]:
        """Return the rows found for ``keys`` in ``table``; missing keys are absent."""


class Metrics(Protocol):
    def incr(self, name: str, value: float = 1) -> None: ...


@dataclass
class SimpleMetrics:
    """An in-memory counter set; adapters flush it in their platform's format."""

    values: dict[str, float] = field(default_factory=dict)

    def incr(self, name: str, value: float = 1) -> None:
        self.values[name] = self.values.get(name, 0) + value


def _no_lookup(table: str, keys: Sequence[Hashable]) -> Mapping[Hashable, Mapping[str, Any]]:
    raise LookupError(f"no lookup store is configured (asked for table {table!r})")


def _no_secret(name: str) -> str:
    raise LookupError(f"no secret store is configured (asked for secret {name!r})")


@dataclass
class Context:
    """Cloud-neutral ports handed to every transform.

    ``lookup(table, keys)`` and ``secret(name)`` are backed by DynamoDB / Firestore /
    Table Storage / DuckDB depending on where the pipeline runs; a transform never
    imports a cloud SDK. Tests build one directly: ``Context(pipeline="t",
    lookup=lambda table, keys: {...})``.
    """

    pipeline: str = ""
    source: Source = field(default_factory=Source)
    lookup: Lookup = _no_lookup
    secret: Callable[[str], str] = _no_secret
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("headwater.transform"))
    metrics: Metrics = field(default_factory=SimpleMetrics)


@runtime_checkable
class Transform(Protocol):
    def __call__(self, record: Record, ctx: Context) -> Result: ...


def import_ref(ref: str) -> Any:
    """Import ``package.module:attr.sub`` (an entry point's value) and return the object:
    the one resolver of plugin references, at plan time and in a function at cold start."""
    module, _, attr = ref.partition(":")
    target: Any = importlib.import_module(module)
    for part in attr.split(".") if attr else []:
        target = getattr(target, part)
    return target


def factory(fn: Callable[..., Transform]) -> Callable[..., Transform]:
    """Mark ``fn`` as a factory explicitly (for factories with positional parameters)."""
    fn.__headwater_factory__ = True  # type: ignore[attr-defined]
    return fn


def _shape(obj: Any) -> tuple[str, inspect.Signature | None]:
    """``("transform" | "factory" | "ambiguous" | "unknown", signature)``.

    A record transform takes exactly two positional parameters without defaults,
    ``(record, ctx)``, and no required keyword-only one. A factory has no required
    positional parameter: its settings are keyword-only or have defaults. Anything else
    (``f(record)``, ``f(a, b, c)``, ``f(*args)``) is ambiguous.
    """
    marked = getattr(obj, "__headwater_factory__", None)
    if marked is not None:
        return ("factory" if marked else "transform"), None
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return "unknown", None
    params = list(sig.parameters.values())
    required = [p for p in params
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    star = any(p.kind is p.VAR_POSITIONAL for p in params)
    required_kw = [p for p in params if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
    if len(required) == 2 and not star and not required_kw:
        return "transform", sig
    if not required and not star:
        return "factory", sig
    return "ambiguous", sig


def is_factory(obj: Any) -> bool:
    """Whether ``obj`` is a factory: marked with :func:`factory`, or no required positional
    parameter (settings keyword-only or with defaults). A record transform takes
    ``(record, ctx)``: exactly two positional parameters without defaults."""
    return _shape(obj)[0] == "factory"


def _label(obj: Any) -> str:
    return getattr(obj, "__name__", None) or type(obj).__name__


def _no_settings(name: str, obj: Any, settings: Mapping[str, Any]) -> str:
    fn = _label(obj)
    given = ", ".join(sorted(settings))
    params = ", ".join(f"{k}=..." for k in sorted(settings))
    return (f"transform {name!r} is a record transform {fn}(record, ctx) (two positional "
            f"parameters without defaults), so it takes no settings (given: {given}). To "
            f"take settings, write a factory whose parameters are keyword-only or have "
            f"defaults and that returns the transform: def make(*, {params}): ... return {fn}"
            f" (and point the entry point at make), or mark it with @factory")


def _ambiguous(name: str, obj: Any, sig: inspect.Signature | None) -> str:
    seen = f"{_label(obj)}{sig}" if sig is not None else repr(obj)
    return (f"transform {name!r}: cannot tell whether {seen} is a record transform or a "
            f"factory. A record transform takes exactly two positional parameters without "
            f"defaults: def {name}(record, ctx): ... return record. A factory's parameters "
            f"are keyword-only or have defaults, and it returns the transform: "
            f"def make(*, setting=default): ... return {name}. Or mark a factory with "
            f"@factory (from headwater import factory)")


def instantiate(obj: Any, settings: Mapping[str, Any] | None, name: str = "") -> Transform:
    """Turn a registered object plus its ``with:`` settings into a record transform.

    A record transform (``(record, ctx)``) is returned as it is and takes no settings; a
    factory is called with the settings; any other shape is a factory when settings are
    given and refused without them, with a message showing both forms.

    Raises :class:`SettingsError` naming the setting at fault. Callers add the pipeline
    and step to the message.
    """
    settings = dict(settings or {})
    shape, sig = _shape(obj)
    if shape == "transform" or (shape == "unknown" and not settings):
        if settings:
            raise SettingsError(sorted(settings)[0], _no_settings(name, obj, settings))
        return obj
    if shape == "unknown":
        raise SettingsError(
            sorted(settings)[0],
            f"transform {name!r}: cannot read the parameters of {obj!r} to pass it settings; "
            f"if it is a factory, mark it with @factory (from headwater import factory)")
    if shape == "ambiguous" and not settings:
        raise SettingsError("*", _ambiguous(name, obj, sig))
    if sig is not None:
        params = sig.parameters
        accepts_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        if not accepts_any:
            for key in sorted(settings):
                if key not in params:
                    import difflib

                    known = ", ".join(sorted(params)) or "none"
                    close = difflib.get_close_matches(key, list(params), n=1, cutoff=0.7)
                    hint = f"; did you mean {close[0]!r}?" if close else ""
                    raise SettingsError(key, f"unknown setting{hint} (accepted: {known})")
        for pname, p in params.items():
            if (p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
                    and pname not in settings):
                raise SettingsError(pname, "required setting is missing")
    try:
        made = obj(**settings)
    except SettingsError:
        raise
    except (TypeError, ValueError) as exc:
        raise SettingsError(_guess_setting(exc, settings), str(exc)) from exc
    if not callable(made):
        raise SettingsError("*", f"factory {name!r} returned {type(made).__name__}, not a transform")
    return made


def _guess_setting(exc: Exception, settings: Mapping[str, Any]) -> str:
    text = str(exc)
    for key in settings:
        if repr(key) in text or f"{key}:" in text or f" {key} " in text:
            return key
    return next(iter(settings), "*")
