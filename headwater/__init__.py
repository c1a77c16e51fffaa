"""headwater: one data pipeline, deployed by Pulumi to AWS, GCP or Azure, or run locally.

What a plugin author needs is re-exported here::

    from headwater import Context, SettingsError, Retryable
"""

from transforms.contract import Context, Retryable, SettingsError, Source, factory

__all__ = ["Context", "Retryable", "SettingsError", "Source", "factory", "__version__"]
__version__ = "0.1.0"
