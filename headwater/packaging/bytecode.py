"""Precompiled bytecode for the function's Python.

A function's code is unpacked onto a read-only file system (Lambda's ``/var/task``), so
Python cannot write ``__pycache__`` there and would compile every module from source on
each cold start. The artifact therefore ships ``__pycache__/<name>.cpython-3XY.pyc`` next
to each ``.py`` of headwater and of every pure-Python distribution in it, compiled by an
interpreter of the target's version:

- the builder itself when its version is the target's,
- else ``python3.X`` found on ``PATH``,
- else none: the artifact ships sources only and the build records why.

The ``.pyc`` files are PEP 552 unchecked-hash pycs: no timestamp inside (reproducible
bytes), and Python never stats the source to validate them. ``co_filename`` is the
artifact-relative path, so no builder path ends up in the artifact; the import system
points it at the real file when it loads the module. The sources stay for tracebacks.

Compilation always runs in a fresh interpreter with a fixed hash seed: marshalled code
depends on set ordering (string hashes) and on which strings the compiling process
already holds, so compiling inside the builder (where these modules are imported) could
give other bytes than compiling in a clean process.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .errors import PackagingError
from .wheels import Entry

__all__ = ["COLD_COMPILE_MS", "Compiler", "compile_entries", "find_compiler"]

# what compiling headwater's modules at import costs a cold start (benchmarks, figure 4)
COLD_COMPILE_MS = 60
COMPILED_SUFFIXES = (".so", ".pyd")

# Runs in the compiling interpreter: argv[1] is the source root, stdin a JSON list of
# artifact-relative .py paths; prints one JSON object {path: pyc path or error text}.
CHILD = r"""
import json, os, py_compile, sys
root = sys.argv[1]
out = {}
for rel in json.load(sys.stdin):
    head, name = os.path.split(rel)
    pyc = os.path.join(head, "__pycache__",
                       name[:-3] + "." + sys.implementation.cache_tag + ".pyc")
    try:
        py_compile.compile(os.path.join(root, rel), cfile=os.path.join(root, pyc), dfile=rel,
                           doraise=True, optimize=0,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    except py_compile.PyCompileError as exc:
        out[rel] = {"error": exc.msg.strip()}
    else:
        out[rel] = {"pyc": pyc.replace(os.sep, "/")}
print(json.dumps(out))
"""


@dataclass(frozen=True)
class Compiler:
    """The interpreter that compiles an artifact's bytecode, or why there is none."""

    python: str  # the target version, "3.12"
    executable: str | None  # None: no interpreter of that version here
    version: str = ""  # the compiler's full version, "3.12.1" (part of the build's inputs)
    note: str = ""  # why there is no bytecode, for the build record and the CLI

    @property
    def found(self) -> bool:
        return self.executable is not None


@functools.lru_cache(maxsize=16)
def _probe(executable: str, _stamp: tuple[int, int]) -> tuple[str, str]:
    """(full version, "") of ``executable``, or ("", why it cannot be used).

    Cached per file identity (``_stamp``: inode, mtime), since a Pulumi program packages
    every pipeline on every run.
    """
    try:
        proc = subprocess.run([executable, "-c", "import sys; print(sys.version.split()[0])"],
                              capture_output=True, text=True, timeout=30,
                              env={"PATH": os.environ.get("PATH", "")})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return "", f"{executable} does not run ({exc})"
    if proc.returncode != 0:
        first = next((ln for ln in proc.stderr.splitlines() if ln.strip()), "no output")
        return "", f"{executable} does not run ({first.strip()[:200]})"
    return proc.stdout.strip(), ""


def _on_path(python: str) -> Compiler:
    name = f"python{python}"
    exe = shutil.which(name, path=os.environ.get("PATH", os.defpath))
    if exe is None:
        return Compiler(python, None, note=f"no {name} here: the function compiles its modules "
                        f"at cold start (~{COLD_COMPILE_MS} ms); put {name} on PATH to ship "
                        "bytecode")
    st = os.stat(exe)
    full, why = _probe(exe, (st.st_ino, st.st_mtime_ns))
    if why or ".".join(full.split(".")[:2]) != python:
        why = why or f"{exe} is Python {full}"
        return Compiler(python, None, note=f"{why}: no bytecode, the function compiles its "
                        f"modules at cold start (~{COLD_COMPILE_MS} ms)")
    return Compiler(python, exe, full)


def find_compiler(python: str) -> Compiler:
    """The interpreter to compile bytecode for target Python ``python`` ("3.12")."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == python:
        return Compiler(python, sys.executable, sys.version.split()[0])
    return _on_path(python)


def _pure_dists(entries: Iterable[Entry]) -> set[str]:
    """Labels of distributions without compiled extension modules."""
    entries = list(entries)
    compiled = {e.dist for e in entries if e.arcname.endswith(COMPILED_SUFFIXES)}
    return {e.dist for e in entries} - compiled


def compile_entries(entries: list[Entry], compiler: Compiler, strict: Iterable[str] = ()
                    ) -> tuple[list[Entry], list[str]]:
    """``.pyc`` entries for every ``.py`` of the pure-Python distributions in ``entries``.

    Returns (pyc entries, artifact paths that did not compile). A module of a
    distribution in ``strict`` (headwater's own) that does not compile for the target
    is a :class:`PackagingError`; a distribution's other files are skipped as pip does
    when it installs (some ship files for other Pythons that are never imported).
    """
    if compiler.executable is None:
        return [], []
    pure = _pure_dists(entries)
    sources = [e for e in entries if e.arcname.endswith(".py") and e.dist in pure]
    label = {e.arcname: e.dist for e in sources}
    with tempfile.TemporaryDirectory(prefix="headwater-pyc-") as tmp:
        root = Path(tmp)
        for e in sources:
            dest = root / PurePosixPath(e.arcname)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(e.read())
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONHASHSEED": "0"}
        proc = subprocess.run([compiler.executable, "-S", "-c", CHILD, str(root)],
                              input=json.dumps([e.arcname for e in sources]),
                              capture_output=True, text=True, env=env, cwd=root)
        if proc.returncode != 0:
            raise PackagingError(f"compiling bytecode with {compiler.executable} failed: "
                                 f"{proc.stderr.strip()[-800:]}")
        results = json.loads(proc.stdout)
        out, failed = [], []
        strict = set(strict)
        for rel, res in sorted(results.items()):
            if "error" in res:
                if label[rel] in strict:
                    raise PackagingError(f"{rel} does not compile for Python "
                                         f"{compiler.python}: {res['error']}")
                failed.append(rel)
                continue
            out.append(Entry.of_bytes(res["pyc"], label[rel], (root / res["pyc"]).read_bytes()))
    return out, failed
