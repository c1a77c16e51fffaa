"""``ctx.secret`` on a cloud's secret store: logical names (as a transform asks for them)
mapped to the store's references, values cached per warm instance. Each cloud adapter
subclasses :class:`CachedSecrets` with one method, :meth:`~CachedSecrets.fetch`."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from .cache import TtlCache

__all__ = ["CachedSecrets"]


class CachedSecrets:
    """``secret(name) -> str``; ``ids`` maps logical names to the store's references."""

    def __init__(self, ids: Mapping[str, str], *, ttl_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ids = dict(ids)
        self.cache = TtlCache(max_entries=100, ttl_s=ttl_s, clock=clock)

    def __call__(self, name: str) -> str:
        value = self.cache.get(name)
        if value is not None:
            return value
        ref = self.ids.get(name)
        if ref is None:
            known = ", ".join(sorted(self.ids)) or "none"
            raise LookupError(f"secret {name!r} is not configured for this function "
                              f"(configured: {known}); add it under the pipeline's secrets:")
        value = self.fetch(name, ref)
        self.cache.put(name, value)
        return value

    def fetch(self, name: str, ref: str) -> str:
        """The secret's text from the store; raise ``Retryable`` when the store fails and
        ``ValueError`` when the secret holds no text."""
        raise NotImplementedError
