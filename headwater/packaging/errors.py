"""Packaging errors. Each message names what failed and says what to do about it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "ArtifactTooLargeError",
    "MissingWheelError",
    "NoPlatformWheelError",
    "PackagingError",
]


class PackagingError(RuntimeError):
    """Base of every packaging error."""


class MissingWheelError(PackagingError):
    """``--offline`` and the wheel cache lacks a wheel the artifact needs."""

    def __init__(self, package: str, version: str, platform: str, wheelhouse: Path,
                 required_by: str) -> None:
        super().__init__(
            f"offline build: no wheel of {package}=={version} for {platform} in the wheel cache "
            f"{wheelhouse} ({package} is needed by {required_by}). Run once without --offline, "
            f"or put a matching wheel in {wheelhouse}."
        )
        self.package = package
        self.version = version
        self.platform = platform
        self.wheelhouse = wheelhouse


class NoPlatformWheelError(PackagingError):
    """A distribution has compiled code and no wheel exists for the target platform."""

    def __init__(self, plugin: str, package: str, version: str, platform: str,
                 detail: str = "") -> None:
        who = f"transform {plugin!r}" if plugin else "the headwater runtime"
        super().__init__(
            f"{who} needs {package}=={version}, which has no wheel for {platform}"
            f"{f' ({detail})' if detail else ''}. A compiled distribution must be built for the "
            "function's platform: publish a manylinux wheel for it, or build one "
            "(e.g. with cibuildwheel) and put it in the wheelhouse (--wheelhouse DIR)."
        )
        self.plugin = plugin
        self.package = package
        self.version = version
        self.platform = platform


class ArtifactTooLargeError(PackagingError):
    """The artifact exceeds a size limit of the platform."""

    def __init__(self, artifact: str, what: str, size: int, limit: int,
                 by_distribution: Mapping[str, int]) -> None:
        largest = sorted(by_distribution.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        listing = ", ".join(f"{name} {human(n)}" for name, n in largest)
        super().__init__(
            f"{artifact}: {what} size {human(size)} is over the platform limit of {human(limit)}. "
            f"Largest distributions ({what}): {listing}. Drop or slim the transforms that pull "
            "them in, or use a lighter source format."
        )
        self.size = size
        self.limit = limit
        self.largest = largest


def human(n: int) -> str:
    """Bytes as a short human-readable string (binary units, like the platform limits)."""
    size = float(n)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024 or unit == "MiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover - loop always returns
