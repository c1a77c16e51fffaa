"""``ctx.secret`` from the environment: ``HEADWATER_SECRET_<NAME>`` (upper-cased, ``-`` and
``/`` become ``_``). The local runner reads what the user exported; on Azure the platform
fills the same settings from Key Vault references with the app's identity."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping

from transforms.contract import Retryable

__all__ = ["SecretMissing", "env_secret", "secret_env_name"]


class SecretMissing(Retryable):
    """The setting that should hold a secret is absent or empty: the invocation fails
    (every record would need it), rather than each record going to the dead-letter."""


def secret_env_name(name: str) -> str:
    return "HEADWATER_SECRET_" + re.sub(r"[-/]", "_", name).upper()


def env_secret(environ: Mapping[str, str] | None = None, *,
               hint: str = "export {var}=... before running") -> Callable[[str], str]:
    """A ``ctx.secret`` reading ``HEADWATER_SECRET_<NAME>`` from ``environ`` (default
    ``os.environ``); ``hint`` (with ``{var}``) tells the user how to set it."""
    env = os.environ if environ is None else environ

    def secret(name: str) -> str:
        var = secret_env_name(name)
        value = env.get(var)
        if not value:
            raise SecretMissing(f"secret {name!r} is not set: {hint.format(var=var)}")
        return value

    return secret
