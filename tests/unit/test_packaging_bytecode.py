"""Bytecode in the artifact: PEP 552 unchecked-hash ``.pyc`` files for the target's Python.

Builds for the running interpreter compile with it. Builds for another Python use
``python3.X`` from ``PATH``: the tests point ``PATH`` at a folder holding either nothing,
a script that reports a wrong version, or a real interpreter of another version when one
is installed on this machine (on ``PATH`` or under pyenv; skipped otherwise). Those
builds get their compiled dependency (orjson) from a wheel made here, with offline set.
"""

from __future__ import annotations

import glob
import importlib.util
import marshal
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from test_packaging import (  # noqa: F401 - on_path is a fixture
    BUILTINS_ONLY,
    HERE_ARCH,
    MACHINE,
    PLUGIN_SRC,
    build,
    make_dist,
    on_path,
    stack,
)

HERE = (sys.version_info.major, sys.version_info.minor)
HERE_PY = f"{HERE[0]}.{HERE[1]}"
TAG = sys.implementation.cache_tag


def _pycs(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist() if n.endswith(".pyc")}


def _other_python() -> tuple[str, str] | None:
    """(minor version "3.Y", executable) of a working CPython other than this one."""
    found = [shutil.which(f"python3.{y}") for y in range(8, 16)]
    found += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python3.*")))
    for exe in filter(None, found):
        if exe.endswith("-config"):
            continue
        proc = subprocess.run([exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True)
        version = proc.stdout.strip()
        if proc.returncode == 0 and version and version != HERE_PY:
            return version, exe
    return None


def _orjson_wheel(wheels: Path, python: str) -> None:
    """A manylinux orjson wheel for ``python`` (its extension module is not real)."""
    import orjson

    cp = "cp" + python.replace(".", "")
    machine = MACHINE[HERE_ARCH]
    wheels.mkdir(parents=True, exist_ok=True)
    name = f"orjson-{orjson.__version__}-{cp}-{cp}-manylinux_2_17_{machine}.whl"
    with zipfile.ZipFile(wheels / name, "w") as zf:
        zf.writestr("orjson/__init__.py", "from .orjson import *\n")
        zf.writestr(f"orjson/orjson.{cp}-{machine}-linux-gnu.so", b"\x7fELF for the target")
        zf.writestr(f"orjson-{orjson.__version__}.dist-info/METADATA",
                    f"Name: orjson\nVersion: {orjson.__version__}\n")


def test_pycs_are_unchecked_hash_for_this_interpreter_with_relative_names(tmp_path):
    build_dir = tmp_path / "build-dir-marker"
    art = build(stack(BUILTINS_ONLY), build_dir, tmp_path / "w")
    pycs = _pycs(art.path)
    assert f"runtimes/aws/__pycache__/handler.{TAG}.pyc" in pycs
    for name, data in pycs.items():
        assert data[:4] == importlib.util.MAGIC_NUMBER, name
        assert int.from_bytes(data[4:8], "little") == 0b01, name  # hash-based, unchecked
        # no builder path: neither the output folder, the source tree nor a temp folder
        assert b"build-dir-marker" not in data and b"headwater-pyc-" not in data, name
        assert str(Path(__file__).resolve().parents[2]).encode() not in data, name
        # co_filename is the artifact path (the import system points it at the real file)
        src = name.replace("__pycache__/", "").replace(f".{TAG}.pyc", ".py")
        assert marshal.loads(data[16:]).co_filename == src


def test_two_builds_with_bytecode_give_the_same_sha256(tmp_path):
    a = build(stack(BUILTINS_ONLY), tmp_path / "a", tmp_path / "w")
    b = build(stack(BUILTINS_ONLY), tmp_path / "b" / "deeper", tmp_path / "w", reuse=False)
    assert a.bytecode and b.bytecode and not b.reused
    assert a.sha256 == b.sha256 and a.path.read_bytes() == b.path.read_bytes()


def test_function_imports_the_shipped_bytecode_from_a_read_only_folder(tmp_path):
    art = build(stack(BUILTINS_ONLY), tmp_path / "o", tmp_path / "w")
    fn = tmp_path / "function"
    with zipfile.ZipFile(art.path) as zf:
        zf.extractall(fn)
    # if Python read a source it would raise: only the .pyc can make these imports work
    for rel in ("runtimes/core/engine.py", "runtimes/aws/handler.py", "transforms/contract.py"):
        (fn / rel).write_text("raise SystemExit('source was compiled at import')\n")
    paths = [p for p in fn.rglob("*")]
    for p in paths:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        proc = subprocess.run(
            [sys.executable, "-I", "-S", "-c",
             "import sys; sys.path[:0] = [sys.argv[1]]; import runtimes.core.engine, "
             "transforms.contract; print('ok')", str(fn)],
            capture_output=True, text=True, timeout=60)
    finally:
        for p in paths:
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


def test_no_interpreter_of_the_target_version_ships_sources_and_says_why(tmp_path, monkeypatch):
    other = "3.12" if HERE != (3, 12) else "3.13"
    _orjson_wheel(tmp_path / "w", other)
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    art = build(stack(BUILTINS_ONLY, python=other), tmp_path / "o", tmp_path / "w")
    assert not art.bytecode and not _pycs(art.path)
    assert art.bytecode_note.startswith(f"no python{other} here: the function compiles its "
                                        "modules at cold start")
    meta = (tmp_path / "o" / "orders-lambda.build.json").read_text()
    assert '"bytecode": false' in meta and f"no python{other} here" in meta

    # a python3.X on PATH that is another version is not used, and the note names it
    liar = empty / f"python{other}"
    liar.write_text("#!/bin/sh\necho 3.7.1\n")
    liar.chmod(0o755)
    art = build(stack(BUILTINS_ONLY, python=other), tmp_path / "o2", tmp_path / "w")
    assert not art.bytecode and f"{liar} is Python 3.7.1" in art.bytecode_note


def test_another_python_on_path_compiles_headwater_and_pure_plugins(tmp_path, monkeypatch,
                                                                    on_path):  # noqa: F811
    other = _other_python()
    if other is None:
        pytest.skip("no CPython of another minor version is installed here")
    python, exe = other
    site = make_dist(tmp_path / "site", "hw-upper", {"hw_upper/__init__.py": PLUGIN_SRC},
                     entry_points={"upper": "hw_upper:make"})
    on_path(site, "hw_upper")
    spec = dict(BUILTINS_ONLY, transforms=[*BUILTINS_ONLY["transforms"], {"use": "upper"}])
    _orjson_wheel(tmp_path / "w", python)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    before = build(stack(spec, python=python), tmp_path / "o", tmp_path / "w")
    assert not before.bytecode

    (bin_dir / f"python{python}").symlink_to(exe)
    after = build(stack(spec, python=python), tmp_path / "o", tmp_path / "w")
    assert not after.reused and after.bytecode  # the compiler is one of the build's inputs
    assert after.bytecode_python.startswith(python + ".")
    again = build(stack(spec, python=python), tmp_path / "o2", tmp_path / "w", reuse=False)
    assert again.sha256 == after.sha256

    magic = subprocess.run([exe, "-c", "import importlib.util, sys; "
                            "sys.stdout.write(importlib.util.MAGIC_NUMBER.hex())"],
                           capture_output=True, text=True).stdout
    tag = "cpython-" + python.replace(".", "")
    pycs = _pycs(after.path)
    assert f"hw_upper/__pycache__/__init__.{tag}.pyc" in pycs
    assert f"runtimes/core/__pycache__/engine.{tag}.pyc" in pycs
    assert not [n for n in pycs if n.startswith("orjson/")]
    for name, data in pycs.items():
        assert f".{tag}.pyc" in name and data[:4].hex() == magic, name
        assert int.from_bytes(data[4:8], "little") == 0b01, name


def test_headwater_module_that_does_not_compile_for_the_target_is_an_error(tmp_path):
    from headwater.packaging import PackagingError
    from headwater.packaging.bytecode import compile_entries, find_compiler
    from headwater.packaging.wheels import Entry

    def entry(name: str, dist: str, text: bytes) -> Entry:
        return Entry(name, dist, len(text), name, lambda: text)

    compiler = find_compiler(HERE_PY)
    good = entry("plug/ok.py", "plug", b"x = 1\n")
    bad = entry("plug/py2.py", "plug", b"print 'python 2'\n")
    pycs, skipped = compile_entries([good, bad], compiler, strict=("headwater",))
    assert [p.arcname for p in pycs] == [f"plug/__pycache__/ok.{TAG}.pyc"]
    assert skipped == ["plug/py2.py"]  # a plugin's file: shipped as source, as pip does
    with pytest.raises(PackagingError, match=r"runtimes/x.py does not compile for Python"):
        compile_entries([entry("runtimes/x.py", "headwater", b"def (:\n")], compiler,
                        strict=("headwater",))
