"""Figure 5: the Lambda artifact, built for real by ``headwater.packaging``.

It builds the built-ins-only artifact of each cloud that exists for its deploy
target (wheels come from the shared wheel cache, fetched from the package index once per
machine) twice into different folders and compares sha256, and again for this
interpreter. Figure 4 (``coldstart.py``) imports the handler from the same pipeline's
artifact.
"""

from __future__ import annotations

import platform
import sys

from ._common import Config, Figure, Target

HERE_PY = f"{sys.version_info.major}.{sys.version_info.minor}"
HERE_ARCH = "arm64" if platform.machine().lower() in ("aarch64", "arm64") else "x86_64"
CLOUDS = ("aws", "gcp", "azure")

PIPELINE = {
    "name": "orders",
    "source": {"prefix": "raw/orders/", "format": "ndjson"},
    "transforms": [
        {"use": "cents", "with": {"source": "value", "target": "value_cents"}},
        {"use": "normalize", "with": {"fields": {"category": "upper"}}},
        {"use": "enrich", "with": {"table": "users", "key": "user_id",
                                   "fields": ["tier", "country"]}},
        {"use": "require", "with": {"fields": ["order_id", "user_id"]}},
    ],
    "sink": {"table": "orders", "columns": {"order_id": "string", "user_id": "string",
                                            "value_cents": "bigint", "category": "string",
                                            "tier": "string", "country": "string"}},
}


def _stack(cloud: str, python: str | None = None, arch: str | None = None):
    from headwater.spec import parse_stack

    conf = {"cloud": cloud, "pipelines": [PIPELINE]}
    if python:
        conf["python"] = python
    if arch:
        conf["arch"] = arch
    return parse_stack(conf)


def built_clouds() -> tuple[str, ...]:
    from components import CLOUDS

    return tuple(CLOUDS)


def figure_artifact(cfg: Config) -> Figure:
    from headwater.packaging import PackagingError, build_pipeline_artifact

    fig = Figure(5, "Artifact: the built-ins-only function artifact per cloud (chain cents, "
                    "normalize, enrich, require; ndjson source), built twice")
    fig.headers = ["cloud", "target", "zipped size", "unzipped size", "files by distribution",
                   "bytecode", "two builds, same sha256"]
    built = built_clouds()
    for cloud in CLOUDS:
        if cloud not in built:
            fig.rows.append([cloud, "-", "not measured: this cloud is not built in headwater yet",
                             "-", "-", "-", "-"])
            continue
        # Azure Functions on Linux runs x86_64 only
        target_arch = "x86_64" if cloud == "azure" else None
        attempts = [("deploy target", None, target_arch), ("this machine", HERE_PY, HERE_ARCH)]
        for label, py, arch in attempts:
            stack = _stack(cloud, py, arch)
            spec = stack.pipelines[0]
            try:
                one = build_pipeline_artifact(stack, spec, cfg.workdir / f"art-{cloud}-{label[0]}1",
                                              reuse=False)
                two = build_pipeline_artifact(stack, spec, cfg.workdir / "elsewhere" /
                                              f"art-{cloud}-{label[0]}2", reuse=False)
            except PackagingError as exc:
                fig.rows.append([cloud, f"{label} ({stack.python}, {stack.arch})",
                                 f"not measured: {exc}".replace("\n", " ")[:300], "-", "-", "-", "-"])
                continue
            same = one.sha256 == two.sha256 and one.path.read_bytes() == two.path.read_bytes()
            dists = ", ".join(f"{k} {v.zipped / 1024:.0f} KiB"
                              for k, v in sorted(one.distributions.items()))
            fig.rows.append([cloud, f"{label} (Python {one.python}, {one.arch})",
                             f"{one.size / 1024:.0f} KiB ({one.size:,} B)",
                             f"{one.unzipped_size / 1024:.0f} KiB", dists,
                             f"compiled by Python {one.bytecode_python}" if one.bytecode
                             else f"none: {one.bytecode_note}",
                             f"{'yes' if same else 'NO'} ({one.sha256[:12]})"])
            if cloud == "aws" and label == "deploy target":
                fig.targets.append(Target("built-ins-only Lambda artifact under 1 MB and "
                                          "reproducible", one.size < 1_000_000 and same,
                                          f"{one.size / 1e6:.2f} MB, same sha256: {same}"))
    if not fig.targets:
        fig.targets.append(Target("built-ins-only Lambda artifact under 1 MB and reproducible",
                                  None, "not measured: no deploy-target build (see the table)"))
    return fig


# Figure 8: a Parquet pipeline (its source format carries pyarrow), for both Lambda
# architectures of the deploy target's Python.
PARQUET_PIPELINE = dict(PIPELINE, source={"prefix": "raw/orders/", "format": "parquet"})
PARQUET_PYTHON = "3.12"  # pyarrow's wheels need glibc 2.28: the python3.12+ runtimes
MIB = 1024 * 1024


def _parquet_stack(arch: str, layers: str = "none"):
    from headwater.spec import parse_stack

    return parse_stack({"cloud": "aws", "python": PARQUET_PYTHON, "arch": arch,
                        "layers": layers, "pipelines": [PARQUET_PIPELINE]})


def figure_parquet_sizes(cfg: Config) -> Figure:
    from headwater.packaging import AwsLambdaLayout, PackagingError, build_pipeline_artifact

    limit = AwsLambdaLayout.limits.unzipped or 0
    fig = Figure(8, "Parquet artifact: the same chain with a Parquet source (pyarrow inside), "
                    f"Python {PARQUET_PYTHON}, per architecture, before and after trimming, "
                    "and with `headwater:layers: shared`")
    fig.headers = ["arch", "build", "zipped", "unzipped (function + layer)",
                   f"of the {limit // MIB} MiB limit", "trimmed away (files, unzipped)"]
    arches = ("arm64",) if cfg.quick else ("arm64", "x86_64")
    fits, savings = [], []
    for arch in arches:
        variants = [("untrimmed", {"trim": False}), ("trimmed (default)", {})]
        if not cfg.quick:
            variants.append(("shared layer", {"layers": "shared"}))
        sizes = {}
        for label, kw in variants:
            stack = _parquet_stack(arch)
            try:
                art = build_pipeline_artifact(stack, stack.pipelines[0],
                                              cfg.workdir / f"parquet-{arch}-{label[:5]}",
                                              reuse=False, **kw)
            except PackagingError as exc:
                fig.rows.append([arch, label, f"not measured: {exc}"[:300], "-", "-", "-"])
                continue
            sizes[label] = art
            zipped = f"{art.size / MIB:.1f} MiB"
            unzipped = f"{art.unzipped_size / MIB:.1f} MiB"
            if art.layer is not None:
                zipped += f" + layer {art.layer.size / MIB:.1f} MiB"
                unzipped += f" + layer {art.layer.unzipped_size / MIB:.1f} MiB"
            trimmed = [art.trimmed, art.layer.trimmed if art.layer else {}]
            files = sum(t["files"] for d in trimmed for t in d.values())
            gone = sum(t["unzipped"] for d in trimmed for t in d.values())
            fig.rows.append([arch, label, zipped, unzipped,
                             f"{art.total_unzipped / limit:.0%}",
                             f"{files} files, {gone / MIB:.1f} MiB" if files else "-"])
            if label != "untrimmed":
                fits.append(art.total_unzipped <= limit)
        if "untrimmed" in sizes and "trimmed (default)" in sizes:
            before, after = sizes["untrimmed"], sizes["trimmed (default)"]
            savings.append(f"{arch}: {(before.size - after.size) / MIB:.1f} MiB zipped, "
                           f"{(before.unzipped_size - after.unzipped_size) / MIB:.1f} MiB "
                           "unzipped")
    fig.targets.append(Target("Parquet pipeline within Lambda's 250 MiB unzipped (code from S3, "
                              "no 50 MiB cliff)", all(fits) if fits else None,
                              f"{len(fits)} builds, {sum(fits)} within"))
    fig.targets.append(Target("trimming saves space in the Parquet artifact", bool(savings) or None,
                              "; ".join(savings) or "not measured"))
    fig.notes.append(
        "Every build is new (no reuse), with the wheels of the shared wheel cache. The zip "
        "sizes matter only for the upload: the code goes through the stack's artifacts "
        "bucket, where Lambda's limit is 250 MiB unzipped for the function and its layers "
        "together. Trimming drops headers, Cython sources, CMake files, type stubs and "
        "bundled tests (headwater/packaging/trim.py); the rest of pyarrow is shared "
        "libraries, most of all libarrow, libarrow_flight and libarrow_s3, which a Parquet "
        "read loads or may load." + (" Quick run: arm64 only, no layer build." if cfg.quick
                                     else ""))
    return fig
