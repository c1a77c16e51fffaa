"""Transform plugins: the contract, the registry and the built-in transforms."""

from .contract import (
    Context,
    Retryable,
    SettingsError,
    SimpleMetrics,
    Source,
    Transform,
    factory,
    instantiate,
    is_factory,
)

__all__ = [
    "Context",
    "Retryable",
    "SettingsError",
    "SimpleMetrics",
    "Source",
    "Transform",
    "factory",
    "instantiate",
    "is_factory",
]
