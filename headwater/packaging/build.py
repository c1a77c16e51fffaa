"""Building one function artifact per pipeline.

    manifest  = build_manifest(pipeline)                  # every use: resolved and checked
    needs     = resolve(manifest, target, provided)       # plugin dists + requirements, pinned
    entries   = headwater runtime subset + manifest + each need's files for the target
    entries   = trim_entries(entries)                     # what a function never runs
    pycs      = compile_entries(entries, compiler)        # bytecode for the target's Python
    artifact  = write_zip(sorted entries + pycs)          # byte-reproducible

With ``headwater:layers: shared``, the needs the layout shares (pyarrow on Lambda) and
their requirements go into one layer zip beside the artifacts (:func:`build_layer`, built
the same way under the layout's ``layer_root``) and out of the function's artifact; the
size limit then counts the function and its layer together.

A build whose inputs (every entry's name and content identity) match the previous
build in the same folder returns that artifact without rewriting it, so a Pulumi program
can call :func:`build_pipeline_artifact` on every run cheaply. The compiler (its version,
or that there is none) is one of those inputs; bytecode is compiled only for a new build.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from .archive import LEVEL, Artifact, DistSize, check_unique, sha256_file, write_zip
from .bytecode import Compiler, compile_entries, find_compiler
from .errors import ArtifactTooLargeError, PackagingError
from .layouts import PLAN_TIME_FILES, SHIPPED_FILES, Layout, Limits, layout_for
from .resolve import HEADWATER, Need, resolve, resolve_roots
from .trim import trim_entries
from .wheels import Entry, Wheelhouse, distribution_entries

__all__ = ["build_layer", "build_pipeline_artifact", "build_stack", "source_root"]

FORMAT = 3  # bump when the archive layout changes, so old builds are not reused
MANIFEST_LABEL = "(manifest)"

Progress = Callable[[str], None]


def source_root() -> Path:
    """The folder holding the ``transforms`` and ``runtimes`` packages of this install."""
    import transforms

    return Path(transforms.__file__).resolve().parent.parent


def _file_entry(root: Path, rel: str, label: str) -> Entry:
    path = root / rel
    data = path.read_bytes()
    return Entry(rel, label, len(data), hashlib.sha256(data).hexdigest(), path.read_bytes)


def runtime_entries(layout: Layout, root: Path | None = None) -> list[Entry]:
    """The headwater source files a function imports (never the plan-time modules)."""
    root = root or source_root()
    if not (root / layout.entry).is_file():
        raise PackagingError(f"{layout.entry} is missing under {root}: the {layout.cloud} "
                             "adapter is not installed with this headwater")
    rels = list(SHIPPED_FILES)
    for folder in layout.shipped_folders():
        rels += sorted(rel for p in (root / folder).rglob("*.py")
                       if "__pycache__" not in p.parts
                       and (rel := p.relative_to(root).as_posix()) not in PLAN_TIME_FILES)
    return [_file_entry(root, rel, HEADWATER) for rel in rels]


def _check_refs(manifest: dict[str, Any], entries: Iterable[Entry], site: str = "",
                also: Iterable[str] = ()) -> None:
    """Every step's module is in the artifact (under ``site``, the layout's site-packages
    folder, if it has one) or in ``also``: its layer's files."""
    names = {e.arcname.removeprefix(site) for e in entries} | set(also)
    tops = {n.split("/", 1)[0] for n in names}
    for step in manifest["steps"]:
        module = step["ref"].partition(":")[0]
        top = module.split(".")[0]
        if top in tops or f"{top}.py" in names or any(
                n.startswith(f"{top}.") and n.endswith((".so", ".pyd")) for n in names):
            continue
        raise PackagingError(
            f"pipeline {manifest['pipeline']['name']!r}, step {step['index']} ({step['use']}): "
            f"module {module} of distribution {step.get('distribution')} is not in the "
            "artifact; is the plugin installed as a regular (RECORD-listed) distribution?")


def _input_hash(entries: list[Entry], layout: Layout, compiler: Compiler,
                kind: str = "function") -> str:
    doc = {"format": FORMAT, "level": LEVEL, "layout": type(layout).__name__, "kind": kind,
           "target": [layout.target.python, layout.target.arch],
           "bytecode": compiler.version if compiler.found else None,
           "entries": [[e.arcname, e.identity] for e in entries]}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _check_size(name: str, what: str, size: int, limit: int | None,
                by_dist: dict[str, int]) -> None:
    if limit is not None and size > limit:
        raise ArtifactTooLargeError(name, what, size, limit, by_dist)


def _reuse(path: Path, meta: Path, input_hash: str) -> Artifact | None:
    """The earlier build at ``path`` if its inputs were the same and the file is intact."""
    if not (path.is_file() and meta.is_file()):
        return None
    try:
        doc = json.loads(meta.read_text(encoding="utf-8"))
    except ValueError:
        return None
    if doc.get("input_hash") != input_hash or sha256_file(path) != doc.get("sha256"):
        return None
    return Artifact(doc["pipeline"], doc["cloud"], path, doc["sha256"], doc["size"],
                    doc["unzipped_size"],
                    {k: DistSize(**v) for k, v in doc["distributions"].items()},
                    doc["python"], doc["arch"], input_hash, reused=True,
                    bytecode=doc.get("bytecode", False), bytecode_python=doc.get(
                        "bytecode_python", ""), bytecode_note=doc.get("bytecode_note", ""),
                    bytecode_skipped=doc.get("bytecode_skipped", []),
                    trimmed=doc.get("trimmed", {}), in_layer=doc.get("in_layer", []))


def _write(path: Path, entries: list[Entry], layout: Layout, limits: Limits, *,
           name: str, cloud: str, kind: str, reuse: bool, say: Progress, prefix: str = "",
           layer: Artifact | None = None, in_layer: list[str] | None = None,
           trim: bool = True) -> Artifact:
    """Trim, compile, check and write ``entries`` to ``path`` (or reuse an identical
    earlier build there). ``prefix`` puts every file under a folder (a layer's root)."""
    entries, dropped = check_unique(entries), {}
    if trim:
        entries, dropped = trim_entries(entries, keep=(HEADWATER, MANIFEST_LABEL))
    trimmed = {k: vars(v) for k, v in sorted(dropped.items())}
    compiler = find_compiler(layout.target.python)
    input_hash = _input_hash(entries, layout, compiler, kind + (f":{prefix}" if prefix else ""))
    meta = path.with_name(path.stem + ".build.json")
    extra = layer.unzipped_size if layer else 0
    if reuse and (old := _reuse(path, meta, input_hash)) is not None:
        old.layer = layer
        _check_size(path.name, "zipped", old.size, limits.zipped,
                    {k: v.zipped for k, v in old.distributions.items()})
        _check_size(path.name, "unzipped" + (" (with its layer)" if layer else ""),
                    old.unzipped_size + extra, limits.unzipped,
                    {k: v.unzipped for k, v in old.distributions.items()})
        return old

    if compiler.found:
        say(f"{name}: compiling bytecode with Python {compiler.version}")
    pycs, not_compiled = compile_entries(entries, compiler, strict=(HEADWATER,))
    entries = check_unique(entries + pycs)
    if prefix:
        entries = [Entry(prefix + e.arcname, e.dist, e.size, e.identity, e.read)
                   for e in entries]
    unzipped: dict[str, int] = {}
    for e in entries:
        unzipped[e.dist] = unzipped.get(e.dist, 0) + e.size
    if layer is not None:
        unzipped.update({f"{k} (layer)": v.unzipped for k, v in layer.distributions.items()})
    _check_size(path.name, "unzipped" + (" (with its layer)" if layer else ""),
                sum(unzipped.values()), limits.unzipped, unzipped)

    say(f"{name}: writing {path.name}")
    sizes = write_zip(path, entries)
    size = path.stat().st_size
    try:
        _check_size(path.name, "zipped", size, limits.zipped,
                    {k: v.zipped for k, v in sizes.items()})
    except ArtifactTooLargeError:
        path.unlink()  # never leave an undeployable artifact where a deploy would pick it up
        meta.unlink(missing_ok=True)
        raise
    artifact = Artifact(name, cloud, path, sha256_file(path), size,
                        sum(v.unzipped for v in sizes.values()), sizes, layout.target.python,
                        layout.target.arch, input_hash, bytecode=compiler.found,
                        bytecode_python=compiler.version, bytecode_note=compiler.note,
                        bytecode_skipped=not_compiled, trimmed=trimmed, layer=layer,
                        in_layer=in_layer or [])
    meta.write_text(json.dumps(artifact.to_json(), indent=2, sort_keys=True) + "\n",
                    encoding="utf-8")
    return artifact


def _shared_needs(layout: Layout, needs: list[Need]) -> list[Need]:
    """The layout's shared distributions among ``needs`` and their requirement closure."""
    roots = [(n.project, n.required_by, n.plugin) for n in needs if n.name in layout.shared]
    return resolve_roots(roots, layout.target, layout.provided) if roots else []


def _layer_names(layer: Artifact | None, layout: Layout) -> list[str]:
    if layer is None:
        return []
    with zipfile.ZipFile(layer.path) as zf:
        return [n.removeprefix(layout.layer_root) for n in zf.namelist()]


def build_layer(layout: Layout, needs: list[Need], out_dir: str | Path, *,
                wheelhouse: Wheelhouse, reuse: bool = True,
                progress: Progress | None = None) -> Artifact:
    """The shared layer of ``needs`` (distributions, already resolved) for ``layout``:
    their files under ``layout.layer_root``, trimmed and compiled like a function's, in
    ``out_dir/<layout.layer_name()>``. The same needs give the same bytes."""
    say = progress or (lambda _msg: None)
    path = Path(out_dir) / layout.layer_name()
    entries: list[Entry] = []
    for need in needs:
        say(f"shared layer: {need.project} {need.version} for {layout.target.platform}")
        entries += distribution_entries(need, layout.target, wheelhouse)
    return _write(path, entries, layout, layout.limits, name="(shared layer)",
                  cloud=layout.cloud, kind="layer", reuse=reuse, say=say,
                  prefix=layout.layer_root)


def build_pipeline_artifact(stack: Any, pipeline: Any, out_dir: str | Path, *,
                            wheelhouse: str | Path | Wheelhouse | None = None,
                            offline: bool = False,
                            python: str | None = None, arch: str | None = None,
                            limits: Limits | None = None, registry: Any | None = None,
                            reuse: bool = True, trim: bool = True,
                            layers: str | None = None, cloud: str | None = None,
                            progress: Progress | None = None) -> Artifact:
    """Build ``pipeline``'s artifact for ``stack.cloud`` into ``out_dir``.

    ``stack`` is a StackConfig (``cloud``, ``python``, ``arch``, ``layers``) and
    ``pipeline`` one of its PipelineSpecs; ``python`` / ``arch`` / ``layers`` override the
    stack's. ``limits`` replaces the platform's size limits (tests); ``trim=False`` keeps
    the files :mod:`.trim` would drop (benchmarks); ``cloud`` builds for another layout
    than the stack's (``"spark"``: a backfill's archive). With shared layers the result's
    ``layer`` is the layer artifact, built or reused in the same folder. Raises
    :class:`PackagingError` subclasses.
    """
    from headwater.manifest import build_manifest
    from runtimes.core.manifest import MANIFEST_NAME
    from transforms.registry import RegistryError

    say = progress or (lambda _msg: None)
    cloud = cloud or stack.cloud
    layout = layout_for(cloud, python or stack.python, arch or stack.arch)
    limits = limits or layout.limits
    out_dir = Path(out_dir)
    path = out_dir / layout.artifact_name(pipeline.name)
    say(f"{pipeline.name}: resolving transforms")
    try:
        manifest = build_manifest(pipeline, registry)
    except RegistryError as exc:
        raise PackagingError(str(exc)) from exc
    needs = resolve(manifest, layout.target, layout.provided, layout.runtime_requires)
    house = wheelhouse if isinstance(wheelhouse, Wheelhouse) else Wheelhouse(wheelhouse, offline)

    layer = None
    in_layer: list[str] = []
    if (layers or getattr(stack, "layers", "none")) == "shared" and layout.shared:
        shared = _shared_needs(layout, needs)
        if shared:
            layer = build_layer(layout, shared, out_dir, wheelhouse=house, reuse=reuse,
                                progress=say)
            in_layer = [n.project for n in shared]
            names = {n.name for n in shared}
            needs = [n for n in needs if n.name not in names]

    entries = runtime_entries(layout)
    data = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False).encode() + b"\n"
    entries.append(Entry.of_bytes(MANIFEST_NAME, MANIFEST_LABEL, data))
    entries += [Entry.of_bytes(n, HEADWATER, b) for n, b in layout.extra_files(manifest).items()]
    for need in needs:
        say(f"{pipeline.name}: {need.project} {need.version} for {layout.target.platform}")
        entries += [replace(e, arcname=layout.site_packages + e.arcname) if layout.site_packages
                    else e for e in distribution_entries(need, layout.target, house)]
    entries = check_unique(entries)
    _check_refs(manifest, entries, layout.site_packages, _layer_names(layer, layout))
    return _write(path, entries, layout, limits, name=pipeline.name, cloud=cloud,
                  kind="function" if trim else "function-untrimmed", reuse=reuse, say=say,
                  layer=layer, in_layer=in_layer, trim=trim)


def build_stack(stack: Any, out_dir: str | Path, *, pipelines: Iterable[str] | None = None,
                **options: Any) -> list[Artifact]:
    """One artifact per pipeline of ``stack`` (or of the named ``pipelines``), in order."""
    wanted = list(pipelines) if pipelines else [p.name for p in stack.pipelines]
    known = {p.name for p in stack.pipelines}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise PackagingError(f"no pipeline {', '.join(map(repr, unknown))} in this stack; have: "
                             f"{', '.join(sorted(known))}")
    from headwater.manifest import build_manifest
    from transforms.registry import RegistryError

    for name in wanted:  # every chain resolves before anything slow is built
        try:
            build_manifest(stack.pipeline(name), options.get("registry"))
        except RegistryError as exc:
            raise PackagingError(str(exc)) from exc
    if "wheelhouse" not in options or not isinstance(options["wheelhouse"], Wheelhouse):
        options["wheelhouse"] = Wheelhouse(options.get("wheelhouse"),
                                           options.pop("offline", False))
    else:
        options.pop("offline", None)
    return [build_pipeline_artifact(stack, stack.pipeline(name), out_dir, **options)
            for name in wanted]
