"""Mocks accept anything; the plan must not. Every registered resource's inputs checked
against its provider SDK's own types, as ``pulumi preview`` would find out only with
credentials.

The inputs are checked as the provider receives them (camelCase, after the SDK's
translation), against the metadata the SDK generates for itself:

- the resource class comes from the type token through the SDK's own resource-module
  registry (``pulumi.runtime.rpc._RESOURCE_MODULES``, filled by ``_utilities.register``
  when ``pulumi_<package>`` is imported), its arguments from ``<Class>Args`` in the class's
  module (``<Class>InitArgs`` where a nested input type took that name);
- property names, their camelCase wire names and their types from ``pulumi._types``
  (``input_type_py_to_pulumi_names``, the getters' return hints, ``_required_property_names``);
  nested objects from the ``...Args`` input types those hints name. A nested key the SDK
  did not translate to camelCase is one it does not know;
- enums are the SDK's ``str``/``Enum`` classes; deprecated properties carry the SDK's
  ``_pulumi_deprecated_callable`` marker and message; deprecated resources log
  ``"<Class> is deprecated: ..."`` first thing in ``_internal_init``.

Works for any Pulumi package generated for Python (``aws``, ``gcp``, ``azure-native`` ...):
nothing here is per cloud. A type whose SDK is not installed is one violation.
"""

from __future__ import annotations

import collections.abc
import difflib
import enum
import functools
import importlib
import inspect
import re
import typing
from collections.abc import Iterable, Mapping
from typing import Any

import pulumi
from pulumi import _types

from .violation import Violation

__all__ = ["SdkType", "schema_violations", "sdk_type"]

_DEPRECATED_RESOURCE = re.compile(r'pulumi\.log\.warn\("""(\w+) is deprecated: (.*?)"""\)', re.S)


class SdkType:
    """The SDK's view of one resource type: its class, its Args input type and whether
    (and why) it is deprecated."""

    def __init__(self, token: str, cls: type, args: type) -> None:
        self.token, self.cls, self.args = token, cls, args
        try:
            head = inspect.getsource(cls._internal_init)[:4000]  # type: ignore[attr-defined]
        except (AttributeError, OSError, TypeError):
            head = ""
        found = _DEPRECATED_RESOURCE.search(head)
        self.deprecated = found.group(2).strip() if found and found.group(1) == cls.__name__ else ""


@functools.cache
def sdk_type(token: str) -> SdkType | str:
    """The SDK type of a resource token, or a sentence saying why there is none."""
    pkg, _, rest = token.partition(":")
    mod = rest.rpartition(":")[0]
    package = "pulumi_" + pkg.replace("-", "_")
    try:
        importlib.import_module(package)
    except ImportError:
        return f"its provider SDK {package} is not installed"
    for module in pulumi.runtime.rpc._RESOURCE_MODULES.get(f"{pkg}:{mod}", []):
        info = getattr(module, "mod_info", {})
        name = info.get("classes", {}).get(token)
        if name:
            cls = getattr(importlib.import_module(info["fqn"]), name)
            home = importlib.import_module(cls.__module__)
            # ``<Class>InitArgs`` when a nested input type already took ``<Class>Args``
            for candidate in (f"{name}Args", f"{name}InitArgs"):
                if candidate in getattr(home, "__all__", ()):
                    return SdkType(token, cls, getattr(home, candidate))
            return f"{cls.__module__} has no {name}Args"
    return f"{package} has no resource type {token}"


# -- reading the SDK's type hints ------------------------------------------------------


def _members(hint: Any) -> list[Any]:
    """The alternatives a value may take, without Input's Awaitable/Output and None."""
    out: list[Any] = []
    for member in typing.get_args(hint) if _is_union(hint) else (hint,):
        origin = typing.get_origin(member)
        if member is type(None) or origin is collections.abc.Awaitable or \
                origin is pulumi.Output or member is pulumi.Output:
            continue
        if isinstance(member, typing.ForwardRef) and "Output" in member.__forward_arg__:
            continue
        out.extend(_members(member) if _is_union(member) else [member])
    return out


def _is_union(hint: Any) -> bool:
    import types

    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _describe(hint: Any) -> str:
    names = []
    for m in _members(hint):
        origin = typing.get_origin(m)
        if origin in (collections.abc.Sequence, list):
            names.append(f"list of {_describe(typing.get_args(m)[0])}")
        elif origin in (collections.abc.Mapping, dict):
            names.append(f"map of {_describe(typing.get_args(m)[1])}")
        elif isinstance(m, type) and issubclass(m, enum.Enum):
            names.append(f"one of {', '.join(repr(e.value) for e in m)}")
        elif isinstance(m, type) and _types.is_input_type(m):
            names.append(f"object {m.__name__}")
        else:
            names.append(getattr(m, "__name__", str(m)))
    return " or ".join(dict.fromkeys(names)) or "anything"


def _py_names(input_cls: type) -> dict[str, str]:
    """camelCase wire name -> snake_case Python name."""
    return {wire: py for py, wire in _types.input_type_py_to_pulumi_names(input_cls).items()}


def _deprecation(input_cls: type, py_name: str) -> str:
    prop = getattr(input_cls, py_name, None)
    fget = getattr(prop, "fget", None)
    if fget is None or "_pulumi_deprecated_callable" not in getattr(fget, "__dict__", {}):
        return ""
    for cell in fget.__closure__ or ():
        if isinstance(cell.cell_contents, str):
            return cell.cell_contents
    return "deprecated"


# -- checking values -------------------------------------------------------------------

# Where a provider SDK types a property with the wrong enum (two API types of one name
# merged into one Python enum), the values the service itself documents, by resource
# type and property name. azure-native's ``ConditionOperator`` is the metric-filter enum
# ('eq', 'gt' ...), but a ScheduledQueryRule's ``criteria.allOf[].operator`` takes the
# ARM values below (Azure REST API, scheduledQueryRules: ConditionOperator).
SDK_ENUM_FIXES: dict[tuple[str, str], frozenset[str]] = {
    ("azure-native:monitor:ScheduledQueryRule", "operator"): frozenset({
        "Equals", "GreaterThan", "GreaterThanOrEqual", "LessThan", "LessThanOrEqual",
        "GreaterOrLessThan"}),
}


class _Checker:
    def __init__(self, typ: str, name: str) -> None:
        self.typ, self.name = typ, name
        self.out: list[Violation] = []

    def report(self, rule: str, message: str, fix: str) -> None:
        self.out.append(Violation(rule, self.typ, self.name, message, fix))

    def value(self, value: Any, hint: Any, path: str) -> None:
        members = _members(hint)
        if value is None or not members or any(m is Any or m is object for m in members):
            return
        enums = [m for m in members if isinstance(m, type) and issubclass(m, enum.Enum)]
        if enums and isinstance(value, str):  # str | Enum: the SDK's known values
            known = [e.value for m in enums for e in m]
            fixed = SDK_ENUM_FIXES.get((self.typ, path.rsplit(".", 1)[-1]))
            if fixed is not None:
                known = sorted(fixed)
            if value not in known:
                self.report("sdk-enum", f"{path} is {value!r}, not a value of the SDK's "
                            f"{enums[0].__name__}", f"use one of {', '.join(map(repr, known))}")
            return
        # Each alternative that could take this value: the first that accepts it wins;
        # else the closest one explains what is wrong.
        errors: list[list[Violation]] = []
        for member in sorted(members, key=lambda m: not _shape_fits(m, value)):
            sub = _Checker(self.typ, self.name)
            sub._one(value, member, path)
            if not sub.out:
                return
            errors.append(sub.out)
        self.out.extend(errors[0])

    def _one(self, value: Any, member: Any, path: str) -> None:
        origin = typing.get_origin(member)
        if origin in (collections.abc.Sequence, list):
            if not isinstance(value, list):
                return self._type(value, member, path)
            for i, item in enumerate(value):
                self.value(item, typing.get_args(member)[0], f"{path}[{i}]")
        elif origin in (collections.abc.Mapping, dict):
            if not isinstance(value, Mapping):
                return self._type(value, member, path)
            for key, item in value.items():
                self.value(item, typing.get_args(member)[1], f"{path}.{key}")
        elif isinstance(member, type) and _types.is_input_type(member):
            if not isinstance(value, Mapping):
                return self._type(value, member, path)
            self.properties(value, member, path)
        elif isinstance(member, type) and issubclass(member, enum.Enum):
            if value not in {e.value for e in member}:
                known = ", ".join(repr(e.value) for e in member)
                self.report("sdk-enum", f"{path} is {value!r}, not a value of the SDK's "
                            f"{member.__name__}", f"use one of {known}")
        elif member is bool:
            if not isinstance(value, bool):
                self._type(value, member, path)
        elif member is int:
            if isinstance(value, bool) or not (isinstance(value, int) or (
                    isinstance(value, float) and value.is_integer())):
                self._type(value, member, path)
        elif member is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                self._type(value, member, path)
        elif member is str:
            if not isinstance(value, str):
                self._type(value, member, path)
        elif isinstance(member, type) and issubclass(member, pulumi.Asset | pulumi.Archive):
            if not isinstance(value, pulumi.Asset | pulumi.Archive):
                self._type(value, member, path)

    def _type(self, value: Any, member: Any, path: str) -> None:
        self.report("sdk-value-type",
                    f"{path} is {type(value).__name__} {_short(value)}, but the SDK "
                    f"types it {_describe(member)}", f"give {path} a {_describe(member)}")

    def properties(self, values: Mapping[str, Any], input_cls: type, path: str) -> None:
        """Keys, required keys, deprecations and values of one object of ``input_cls``."""
        names = _py_names(input_cls)
        hints = _types._raw_return_hints(input_cls)
        where = f"{path}." if path else ""
        for key, value in values.items():
            if key not in names:
                near = difflib.get_close_matches(_camel(key), list(names), n=2)
                hint = f"did you mean {' or '.join(names[n] for n in near)}? " if near else ""
                self.report("sdk-unknown-property",
                            f"{where}{key} is not a property of {input_cls.__name__}",
                            f"{hint}{input_cls.__name__} takes "
                            f"{', '.join(sorted(names.values()))}")
                continue
            why = _deprecation(input_cls, names[key])
            if why and value is not None:
                self.report("sdk-deprecated", f"{where}{key} is deprecated: {why}",
                            "follow the SDK's deprecation note")
            self.value(value, hints.get(key), f"{where}{key}")
        for key in sorted(_types._required_property_names(input_cls)):
            if values.get(key) is None:
                self.report("sdk-required", f"{where}{key} is missing; {input_cls.__name__} "
                            "requires it", f"set {where}{names.get(key, key)}")


def _shape_fits(member: Any, value: Any) -> bool:
    origin = typing.get_origin(member)
    if isinstance(value, list):
        return origin in (collections.abc.Sequence, list)
    if isinstance(value, Mapping):
        return origin in (collections.abc.Mapping, dict) or (
            isinstance(member, type) and _types.is_input_type(member))
    return origin is None and not (isinstance(member, type) and _types.is_input_type(member))


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def schema_violations(resources: Iterable[Any]) -> list[Violation]:
    """Every breach of the SDK's schema among ``resources`` (objects with ``typ``,
    ``name``, ``inputs`` and ``read``, like :class:`headwater.program.Res`). Components
    (types of no provider package) and resources only read are skipped."""
    out: list[Violation] = []
    for res in resources:
        if res.read or res.typ.startswith(("headwater:", "pulumi:")):
            continue
        found = sdk_type(res.typ)
        check = _Checker(res.typ, res.name)
        if isinstance(found, str):
            check.report("sdk-unknown-resource", f"cannot check {res.typ}: {found}",
                         "install the provider SDK the program uses")
        else:
            if found.deprecated:
                check.report("sdk-deprecated", f"{res.typ} is deprecated: {found.deprecated}",
                             "move to the resource the SDK names")
            check.properties(res.inputs, found.args, "")
        out.extend(check.out)
    return out
