"""Getting a distribution's files for the target platform.

In order of preference, for one pinned distribution:

1. the installed copy, when its wheel tags fit the target (every pure-Python
   distribution; a compiled one when the builder is the function's platform): its
   ``RECORD`` lists exactly the files a wheel put there;
2. for an editable install, a wheel built from its source folder (``pip wheel``);
3. a matching wheel in the wheel cache (``~/.cache/headwater/wheels``, ``--wheelhouse``);
4. unless offline, ``pip download --only-binary=:all: --platform ... --python-version``
   into the cache, so each wheel is fetched once per machine.

A compiled distribution with no wheel for the target is an error naming the transform,
the package and the platform. Wheels are unpacked here (plain zip reads), never
installed, so nothing of the builder's platform leaks in.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from packaging.tags import Tag, parse_tag
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from .errors import MissingWheelError, NoPlatformWheelError, PackagingError
from .layouts import Target
from .resolve import Need

__all__ = ["Entry", "Wheelhouse", "default_wheelhouse", "distribution_entries", "skipped"]

# installer bookkeeping, not part of what a function imports; direct_url.json would
# also carry the builder's absolute paths
DIST_INFO_DROP = {"RECORD", "RECORD.jws", "RECORD.p7s", "INSTALLER", "REQUESTED",
                  "direct_url.json"}
# bytecode of the builder's Python: the build compiles its own for the target (bytecode.py);
# what else a function never runs (headers, Cython sources, test suites) is trimmed by
# trim.py, after the entries are gathered, so that the build can report the saving
BYTECODE_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True)
class Entry:
    """One file of the artifact, read on demand."""

    arcname: str
    dist: str  # which distribution it belongs to, for size reports
    size: int
    identity: str  # stands for the content in the build's input hash
    read: Callable[[], bytes]

    @classmethod
    def of_bytes(cls, name: str, label: str, data: bytes) -> Entry:
        """An entry whose content is ``data`` (the manifest, a generated file, a .pyc)."""
        return cls(name, label, len(data), hashlib.sha256(data).hexdigest(), lambda: data)


def skipped(arcname: str) -> bool:
    parts = PurePosixPath(arcname).parts
    if not parts or "__pycache__" in parts or arcname.endswith(BYTECODE_SUFFIXES):
        return True
    if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] in DIST_INFO_DROP:
        return True
    return False


def safe_arcname(name: str, where: str) -> str:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name:
        raise PackagingError(f"{where}: refusing file {name!r} outside the artifact root")
    return path.as_posix()


def default_wheelhouse() -> Path:
    """``$HEADWATER_WHEELHOUSE``, else ``$XDG_CACHE_HOME/headwater/wheels`` (``~/.cache``)."""
    if os.environ.get("HEADWATER_WHEELHOUSE"):
        return Path(os.environ["HEADWATER_WHEELHOUSE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "headwater" / "wheels"


def sha256_file(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _rank(tags: frozenset[Tag], target: Target) -> int | None:
    """Position of the best of ``tags`` in the target's preference list (lower is better)."""
    order = {t: i for i, t in enumerate(target.tags())}
    hits = [order[t] for t in tags if t in order]
    return min(hits) if hits else None


class Wheelhouse:
    """A folder of downloaded wheels shared by every build on this machine."""

    def __init__(self, path: str | Path | None = None, offline: bool = False) -> None:
        self.path = Path(path) if path is not None else default_wheelhouse()
        self.offline = offline

    def best(self, project: str, version: str, target: Target) -> Path | None:
        """The most specific cached wheel of ``project==version`` that fits ``target``."""
        if not self.path.is_dir():
            return None
        want = canonicalize_name(project)
        candidates = []
        for path in self.path.glob("*.whl"):
            try:
                name, ver, _build, tags = parse_wheel_filename(path.name)
            except InvalidWheelFilename:
                continue
            if name != want or str(ver) != version:
                continue
            rank = _rank(tags, target)
            if rank is not None:
                candidates.append((rank, path.name, path))
        return min(candidates)[2] if candidates else None

    def fetch(self, need: Need, target: Target) -> Path:
        found = self.best(need.project, need.version, target)
        if found is not None:
            return found
        if self.offline:
            raise MissingWheelError(need.project, need.version, target.platform, self.path,
                                    need.required_by)
        self.path.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
               "--no-deps", "--only-binary=:all:", "--implementation", "cp",
               "--python-version", target.python, "--dest", str(self.path)]
        for platform in target.platforms:
            cmd += ["--platform", platform]
        cmd.append(f"{need.project}=={need.version}")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            text = proc.stderr.strip() or proc.stdout.strip()
            if "No matching distribution" in text or "Could not find a version" in text:
                raise NoPlatformWheelError(need.plugin, need.project, need.version,
                                           target.platform, "not on the package index")
            raise PackagingError(f"pip download {need.project}=={need.version} for "
                                 f"{target.platform} failed: {text[-800:]}")
        found = self.best(need.project, need.version, target)
        if found is None:  # pip chose a wheel our tag list does not accept
            raise NoPlatformWheelError(need.plugin, need.project, need.version, target.platform,
                                       "the index offered no wheel with a matching tag")
        return found


def wheel_entries(path: Path, label: str) -> list[Entry]:
    """The files a wheel installs into site-packages (``.data/purelib|platlib`` folded in)."""
    digest = sha256_file(path)
    zf = zipfile.ZipFile(path)
    entries = []
    for info in zf.infolist():
        if info.is_dir():
            continue
        name = info.filename
        top, _, rest = name.partition("/")
        if top.endswith(".data"):
            kind, _, inner = rest.partition("/")
            if kind not in ("purelib", "platlib"):
                continue  # scripts, headers, data: not importable code
            name = inner
        if not name or skipped(name):
            continue
        arcname = safe_arcname(name, path.name)
        entries.append(Entry(arcname, label, info.file_size,
                             f"{digest}:{info.filename}:{info.CRC:08x}",
                             lambda zf=zf, info=info: zf.read(info)))
    return entries


def _wheel_tags(dist: md.Distribution) -> frozenset[Tag] | None:
    text = dist.read_text("WHEEL")
    if text is None:
        return None
    tags: set[Tag] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Tag":
            tags |= parse_tag(value.strip())
    return frozenset(tags) or None


def _direct_url(dist: md.Distribution) -> dict | None:
    text = dist.read_text("direct_url.json")
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _installed_entries(dist: md.Distribution, label: str) -> list[Entry] | None:
    files = dist.files
    if not files:
        return None
    entries = []
    for rel in files:
        name = PurePosixPath(str(rel).replace("\\", "/")).as_posix()
        if name.startswith("../") or name.startswith("/") or skipped(name):
            continue  # console scripts, headers outside site-packages, bytecode
        path = Path(dist.locate_file(rel))
        if not path.is_file():
            raise PackagingError(f"{label}: installed file {name} listed in RECORD is missing; "
                                 f"reinstall {label}")
        data = path.read_bytes()
        entries.append(Entry(safe_arcname(name, label), label, len(data),
                             hashlib.sha256(data).hexdigest(), path.read_bytes))
    return entries


def _editable_source(dist: md.Distribution) -> Path | None:
    info = _direct_url(dist)
    if not info or not info.get("dir_info", {}).get("editable"):
        return None
    url = info.get("url", "")
    return Path(url.removeprefix("file://")) if url.startswith("file://") else None


def _wheel_from_source(source: Path, label: str) -> list[Entry]:
    with tempfile.TemporaryDirectory(prefix="headwater-wheel-") as tmp:
        # build from a clean copy: a stale build/ in the source folder would put deleted
        # modules back into the wheel, and the user's tree is left as it was
        copy = Path(tmp) / "src"
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns(
            "build", "dist", "*.egg-info", ".git", ".venv", "__pycache__", ".tox", ".nox"))
        out = Path(tmp) / "wheel"
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
             "--no-deps", "--no-build-isolation", "--wheel-dir", str(out), str(copy)],
            capture_output=True, text=True)
        wheels = sorted(out.glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            raise PackagingError(f"building a wheel of {label} from {source} failed: "
                                 f"{(proc.stderr or proc.stdout).strip()[-800:]}")
        # read now: the temporary wheel is gone after this block
        return [Entry(e.arcname, e.dist, e.size, e.identity, (lambda b=e.read(): b))
                for e in wheel_entries(wheels[0], label)]


def distribution_entries(need: Need, target: Target, wheelhouse: Wheelhouse) -> list[Entry]:
    """The files of ``need`` for ``target`` (see the module docstring for the order)."""
    dist, label = need.dist, need.project
    tags = _wheel_tags(dist)
    editable = _editable_source(dist)
    if editable is not None and tags is not None and all(t.platform == "any" for t in tags):
        return _wheel_from_source(editable, label)
    if editable is None and tags is not None and _rank(tags, target) is not None:
        entries = _installed_entries(dist, label)
        if entries is not None:
            return entries
    cached = wheelhouse.best(need.project, need.version, target)
    if cached is not None:
        return wheel_entries(cached, label)
    if _direct_url(dist) is not None and not wheelhouse.offline:
        # installed from a path or URL: the index may not have it, or not this code
        raise NoPlatformWheelError(need.plugin, need.project, need.version, target.platform,
                                   "installed from a local path or URL and built for "
                                   f"{', '.join(sorted(str(t) for t in tags or ())) or 'unknown tags'}")
    return wheel_entries(wheelhouse.fetch(need, target), label)
