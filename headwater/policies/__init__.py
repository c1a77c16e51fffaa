"""Policy rules written once: run by ``headwater plan`` on the mocked resources, and
registered as the CrossGuard pack in ``policy/`` for ``pulumi preview --policy-pack policy``.

Each :class:`Rule` has one ``validate(args, report_violation)`` function with
pulumi-policy's own signature: ``args`` is a ``ResourceValidationArgs`` (``resource_type``,
``props``, ``urn``, ``name``) for a resource rule or a ``StackValidationArgs``
(``resources``) for a stack rule. The pack wraps exactly these functions in
``ResourceValidationPolicy``/``StackValidationPolicy`` (:func:`pack_policies`); the plan
calls them with look-alike arguments built from the mocked graph (:func:`evaluate`). So
the two cannot drift apart.

A rule's checks are per cloud (``aws.py`` ...), each added to its rule with
:meth:`Rule.check`; a new cloud adds its module and imports it at the bottom here.
A check yields ``(resource, what, fix)``; the rule reports
``"<type> '<name>': <what>. Fix: <fix>"`` against the resource's URN.

In a real preview a value that depends on a resource not yet created is unknown;
pulumi-policy raises on reading it. A check that meets one is skipped (for that resource;
a stack check as a whole) and ``pulumi up`` evaluates it with the values known; the
offline plan knows every value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from headwater.plan.violation import Violation

__all__ = ["RULES", "Rule", "evaluate", "is_secret_name", "pack_policies", "rule"]

Finding = tuple[Any, str, str]  # (resource, what is wrong, the fix)


def _unknown_errors() -> tuple[type[BaseException], ...]:
    try:
        from pulumi_policy.proxy import UnknownValueError
    except ImportError:  # the offline plan: every value is known
        return ()
    return (UnknownValueError,)


@dataclass(eq=False)
class Rule:
    """One mandatory rule: ``name`` (the policy name), ``description``, ``stack`` (a stack
    rule sees every resource; else one resource at a time), and the clouds' checks."""

    name: str
    description: str
    stack: bool
    checks: list[Callable[..., Iterable[Finding]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        unknown = _unknown_errors()

        def validate(args: Any, report_violation: Callable[..., None]) -> None:
            targets = [args.resources] if self.stack else [args]
            for check in self.checks:
                for target in targets:
                    try:
                        for res, what, fix in check(target):
                            report_violation(
                                f"{res.resource_type} {res.name!r}: {what}. Fix: {fix}",
                                res.urn)
                    except unknown:  # pragma: no cover - only inside a real preview
                        continue

        validate.__name__ = validate.__qualname__ = f"validate_{self.name.replace('-', '_')}"
        validate.__doc__ = self.description
        self.validate = validate

    def check(self, fn: Callable[..., Iterable[Finding]]) -> Callable[..., Iterable[Finding]]:
        """Decorator: add a cloud's check to this rule."""
        self.checks.append(fn)
        return fn


RULES: list[Rule] = [
    Rule("no-public-access", "No bucket, container or blob is publicly readable or "
         "writable.", stack=True),
    Rule("encryption-at-rest", "Buckets, queues and streams encrypt data at rest.",
         stack=True),
    Rule("tls-only", "Storage refuses requests that are not made over TLS.", stack=True),
    Rule("iam-no-wildcards", "No '*' in the actions or resources an IAM policy allows "
         "(the documented child wildcards excepted); no primitive project roles.",
         stack=False),
    Rule("dead-letter", "Every asynchronous path has a dead-letter destination.",
         stack=True),
    Rule("log-retention", "Every log group, and every function's logs, expire.", stack=True),
    Rule("no-plain-secrets", "No secret values in plain text in a function's environment "
         "or app settings.", stack=False),
    Rule("timeout-below-visibility", "A function's timeout is below the visibility "
         "timeout of the queue it consumes.", stack=True),
    Rule("no-retrigger", "No sink or dead-letter writes where it would trigger the "
         "pipeline's source again.", stack=True),
]
_BY_NAME = {r.name: r for r in RULES}


def rule(name: str) -> Rule:
    return _BY_NAME[name]


# -- shared by every cloud's checks ----------------------------------------------------

SECRET_WORDS = ("KEY", "SECRET", "PASSWORD", "PASSWD", "TOKEN", "CONNECTION_STRING",
                "CONNECTIONSTRING", "CREDENTIAL")
_REFERENCE = re.compile(
    r"^(arn:[a-z-]+:(secretsmanager|ssm|kms):"  # AWS: a secret, a parameter or a key
    r"|@Microsoft\.KeyVault\("  # Azure: a Key Vault reference in app settings
    r"|projects/[^/]+/secrets/)")  # GCP: a Secret Manager secret (version)


def is_secret_name(name: str) -> bool:
    """Names like *KEY*, *SECRET*, *PASSWORD*, *TOKEN*, *CONNECTION_STRING*."""
    upper = name.upper().replace("-", "_")
    return any(word in upper for word in SECRET_WORDS)


def is_reference(value: Any) -> bool:
    """A value that names a secret in a secret store instead of holding it."""
    return isinstance(value, str) and (value == "" or bool(_REFERENCE.match(value)))


# headwater's own variables whose values are references, never secrets
REFERENCE_VARIABLES = {
    "HEADWATER_SECRETS": "logical name -> secret name, ARN or resource name",
    "HEADWATER_LOOKUP_KEYS": "lookup table -> key attribute name",
}


def is_reference_map(name: str, value: Any) -> bool:
    """One of :data:`REFERENCE_VARIABLES` holding what it should: a JSON object of names."""
    if name not in REFERENCE_VARIABLES:
        return False
    try:
        parsed = json.loads(value)
    except (TypeError, ValueError):
        return False
    return isinstance(parsed, dict) and all(
        isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9/_+=.@:-]+", v) for v in parsed.values())


def of_type(resources: Sequence[Any], *types: str) -> Iterator[Any]:
    return (r for r in resources if r.resource_type in types)


def get(obj: Any, *path: str | int, default: Any = None) -> Any:
    """``obj[path[0]][path[1]]...``, or ``default`` where a step is missing."""
    for step in path:
        try:
            obj = obj[step]
        except (KeyError, IndexError, TypeError):
            return default
        if obj is None:
            return default
    return obj


def prefixes_overlap(a: str, b: str) -> bool:
    """One object key could start with both (one prefix starts with the other)."""
    return a.startswith(b) or b.startswith(a)


# -- the offline plan ------------------------------------------------------------------


def evaluate(resources: Iterable[Any], rules: Sequence[Rule] = RULES) -> list[Violation]:
    """Run ``rules`` on recorded resources (``typ``, ``name``, ``urn``, ``inputs``,
    ``outputs``, ``read``, as :class:`headwater.program.Res`). A resource rule sees the
    inputs (as CrossGuard's ``Analyze``), a stack rule the outputs (as ``AnalyzeStack``).
    Resources the stack only reads are not the stack's to fix and are left out."""
    own = [r for r in resources if not r.read]
    by_urn = {r.urn: r for r in own}

    def view(r: Any, props: Mapping[str, Any]) -> SimpleNamespace:
        return SimpleNamespace(resource_type=r.typ, name=r.name, urn=r.urn, props=props)

    stack_args = SimpleNamespace(resources=[view(r, r.outputs or r.inputs) for r in own])
    out: list[Violation] = []
    for rule_ in rules:
        found = _Reports()
        if rule_.stack:
            rule_.validate(stack_args, found)
        else:
            for r in own:
                rule_.validate(view(r, r.inputs), found)
        for message, urn in found.reports:
            res = by_urn.get(urn or "")
            head = f"{res.typ} {res.name!r}: " if res else ""
            body = message[len(head):] if head and message.startswith(head) else message
            what, _, fix = body.partition(". Fix: ")
            out.append(Violation(rule_.name, res.typ if res else "", res.name if res else "",
                                 what, fix))
    return out


class _Reports:
    """A ``report_violation`` that keeps what it is told."""

    def __init__(self) -> None:
        self.reports: list[tuple[str, str | None]] = []

    def __call__(self, message: str, urn: str | None = None) -> None:
        self.reports.append((message, urn))


def pack_policies() -> list[Any]:
    """The CrossGuard policies: each rule's own ``validate`` in a pulumi-policy
    ``ResourceValidationPolicy`` or ``StackValidationPolicy``, mandatory."""
    from pulumi_policy import EnforcementLevel, ResourceValidationPolicy, StackValidationPolicy

    return [(StackValidationPolicy if r.stack else ResourceValidationPolicy)(
        name=r.name, description=r.description, validate=r.validate,
        enforcement_level=EnforcementLevel.MANDATORY) for r in RULES]


# Each cloud's checks join the rules above when its module is imported.
from . import aws, azure, gcp  # noqa: E402,F401
