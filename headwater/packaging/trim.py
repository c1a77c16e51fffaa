"""What a function never runs, dropped from the third-party distributions it ships.

Wheels of compiled projects carry what was needed to *build against* them or to test
them. A deployed function imports modules and loads shared libraries, nothing else, so
the build drops, from every distribution but headwater's own:

- C and C++ headers and sources (``.h .hh .hpp .hxx .c .cc .cpp .cxx``) and any folder
  named ``include`` inside a package (``pyarrow/include/``): for compiling extensions;
- Cython sources and declarations (``.pyx .pxd .pxi``): compiled into the ``.so`` files;
- CMake files (``CMakeLists.txt``, ``*.cmake``) and static libraries (``.a``): build
  inputs;
- type stubs (``.pyi``): read by type checkers, never imported;
- bundled test suites: a ``tests`` folder inside a package (``pyarrow/tests/``), and
  ``conftest.py`` files.

A top-level ``tests`` package is kept (it would be a distribution's only code), and
``.dist-info`` folders are left whole. The list is :data:`SUFFIXES`, :data:`NAMES` and
:data:`FOLDERS`; the README's packaging section repeats it. A test builds the trimmed
artifact of a Parquet pipeline, imports ``pyarrow.parquet`` from it in a clean
interpreter and reads a file, and imports every built-in transform from it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath

from .wheels import Entry

__all__ = ["FOLDERS", "NAMES", "SUFFIXES", "Trimmed", "trim_entries", "trimmed"]

SUFFIXES = (".h", ".hh", ".hpp", ".hxx", ".c", ".cc", ".cpp", ".cxx",  # C/C++
            ".pyx", ".pxd", ".pxi",  # Cython
            ".cmake", ".a",  # build inputs
            ".pyi")  # type stubs
NAMES = ("CMakeLists.txt", "conftest.py")
FOLDERS = ("include", "tests")  # only below a package's top folder


@dataclass
class Trimmed:
    """What trimming removed from one distribution."""

    files: int = 0
    unzipped: int = 0


def trimmed(arcname: str) -> bool:
    """True when ``arcname`` (a path in the artifact) is something a function never runs."""
    parts = PurePosixPath(arcname).parts
    if not parts or parts[0].endswith(".dist-info"):
        return False
    if parts[-1] in NAMES or parts[-1].endswith(SUFFIXES):
        return True
    return any(p in FOLDERS for p in parts[1:-1])


def trim_entries(entries: Iterable[Entry], keep: Iterable[str] = ()
                 ) -> tuple[list[Entry], dict[str, Trimmed]]:
    """(entries without the trimmed files, what was dropped per distribution). Entries of
    the distributions in ``keep`` (headwater's own) are never trimmed."""
    keep = set(keep)
    out: list[Entry] = []
    dropped: dict[str, Trimmed] = {}
    for e in entries:
        if e.dist not in keep and trimmed(e.arcname):
            t = dropped.setdefault(e.dist, Trimmed())
            t.files += 1
            t.unzipped += e.size
        else:
            out.append(e)
    return out, dropped
