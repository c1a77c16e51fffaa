"""Byte-reproducible zip archives.

The same entries always give the same bytes: entries sorted by name, no directory
entries, every timestamp 1980-01-01 00:00, mode 0644 regular file, Unix as the creating
system, deflate at a fixed level, no extra fields or comments. (Bytes can differ between
builders linked against different zlib builds; the sha256 is stable per environment.)
"""

from __future__ import annotations

import stat
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import PackagingError
from .wheels import Entry, sha256_file

__all__ = ["Artifact", "DistSize", "sha256_file", "write_zip"]

EPOCH = (1980, 1, 1, 0, 0, 0)
FILE_MODE = (stat.S_IFREG | 0o644) << 16
LEVEL = 6  # zlib default: level 9 is twice as slow on large shared libraries for ~0.5% less


@dataclass
class DistSize:
    """How much one distribution adds to an artifact."""

    files: int = 0
    unzipped: int = 0
    zipped: int = 0


@dataclass
class Artifact:
    """A built function artifact."""

    pipeline: str
    cloud: str
    path: Path
    sha256: str
    size: int  # bytes of the archive
    unzipped_size: int
    distributions: dict[str, DistSize] = field(default_factory=dict)
    python: str = ""
    arch: str = ""
    input_hash: str = ""
    reused: bool = False  # True when an identical earlier build was returned
    bytecode: bool = False  # ships __pycache__/*.pyc for the target's Python
    bytecode_python: str = ""  # full version of the interpreter that compiled it
    bytecode_note: str = ""  # why there is no bytecode
    bytecode_skipped: list[str] = field(default_factory=list)  # distribution files that
    # did not compile for the target (shipped as source only, as pip installs them)
    trimmed: dict[str, dict[str, int]] = field(default_factory=dict)  # dist -> {files,
    # unzipped}: what trim.py dropped (files a function never runs)
    layer: Artifact | None = None  # the shared layer this function runs with, if any
    in_layer: list[str] = field(default_factory=list)  # distributions left to that layer

    @property
    def total_unzipped(self) -> int:
        """Unzipped bytes the function runs with: its code plus its layer (the platform's
        limit counts both)."""
        return self.unzipped_size + (self.layer.unzipped_size if self.layer else 0)

    def to_json(self) -> dict:
        return {
            "pipeline": self.pipeline, "cloud": self.cloud, "path": self.path.name,
            "sha256": self.sha256, "size": self.size, "unzipped_size": self.unzipped_size,
            "python": self.python, "arch": self.arch, "input_hash": self.input_hash,
            "bytecode": self.bytecode, "bytecode_python": self.bytecode_python,
            "bytecode_note": self.bytecode_note, "bytecode_skipped": self.bytecode_skipped,
            "trimmed": dict(sorted(self.trimmed.items())), "in_layer": self.in_layer,
            "distributions": {k: vars(v) for k, v in sorted(self.distributions.items())},
        }


def check_unique(entries: Iterable[Entry]) -> list[Entry]:
    """Entries sorted by name; two distributions claiming one path is an error."""
    by_name: dict[str, Entry] = {}
    for e in entries:
        other = by_name.get(e.arcname)
        if other is not None and other.identity != e.identity:
            raise PackagingError(f"{e.arcname} is shipped by both {other.dist} and {e.dist} "
                                 "with different contents; they cannot share one artifact")
        by_name[e.arcname] = e
    return [by_name[k] for k in sorted(by_name)]


def write_zip(path: Path, entries: list[Entry]) -> dict[str, DistSize]:
    """Write ``entries`` (already sorted and unique) to ``path``; per-distribution sizes."""
    sizes: dict[str, DistSize] = {}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with zipfile.ZipFile(tmp, "w") as zf:
        for e in entries:
            info = zipfile.ZipInfo(e.arcname, EPOCH)
            info.external_attr = FILE_MODE
            info.create_system = 3  # Unix, whatever the builder runs on
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, e.read(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=LEVEL)
            written = zf.getinfo(e.arcname)
            s = sizes.setdefault(e.dist, DistSize())
            s.files += 1
            s.unzipped += written.file_size
            s.zipped += written.compress_size
    tmp.replace(path)
    return sizes
