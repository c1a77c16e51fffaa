"""The local runner's dead-letter: NDJSON files under a folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.deadletter import encode, object_name

__all__ = ["FolderDeadLetter"]


class FolderDeadLetter:
    """Writes under ``<root>/<pipeline>/dt=.../`` (the local runner's dead-letter)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def write(self, pipeline: str, bucket: str, key: str, entries: list[dict[str, Any]]) -> None:
        path = self.root / object_name(pipeline, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(encode(entries))
        tmp.replace(path)
