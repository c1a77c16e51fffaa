"""Packaging without the network: artifacts built for the running interpreter's own
platform, whose compiled requirements (orjson) come from the installed copies, with an
empty wheel cache and ``offline=True`` so any download attempt would fail the test.

Fake plugin distributions are real installed-layout folders (dist-info with METADATA,
WHEEL, RECORD, entry_points.txt) put on ``sys.path`` the way ``pip install --target``
leaves them.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import zipfile
from pathlib import Path

import pytest

from headwater.packaging import (
    ArtifactTooLargeError,
    Limits,
    MissingWheelError,
    NoPlatformWheelError,
    PackagingError,
    Target,
    build_pipeline_artifact,
    layout_for,
)
from headwater.packaging.resolve import resolve
from headwater.spec import parse_stack
from runtimes.core.manifest import MANIFEST_NAME

HERE_PY = f"{sys.version_info.major}.{sys.version_info.minor}"
HERE_ARCH = "arm64" if platform.machine().lower() in ("aarch64", "arm64") else "x86_64"
OTHER_ARCH = "x86_64" if HERE_ARCH == "arm64" else "arm64"
MACHINE = {"arm64": "aarch64", "x86_64": "x86_64"}
CP = f"cp{sys.version_info.major}{sys.version_info.minor}"

BUILTINS_ONLY = {
    "name": "orders",
    "source": {"prefix": "raw/orders/", "format": "ndjson"},
    "transforms": [{"use": "cents", "with": {"source": "value", "target": "value_cents"}},
                   {"use": "require", "with": {"fields": ["order_id"]}}],
    "sink": {"table": "orders"},
}


def stack(*pipelines: dict, arch: str = HERE_ARCH, python: str = HERE_PY):
    return parse_stack({"headwater:cloud": "aws", "headwater:python": python,
                        "headwater:arch": arch, "headwater:pipelines": list(pipelines)})


def build(st, out: Path, wheels: Path, **kw):
    kw.setdefault("offline", True)
    return build_pipeline_artifact(st, st.pipelines[0], out, wheelhouse=wheels, **kw)


def names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        return zf.namelist()


def make_dist(site: Path, name: str, files: dict[str, bytes], *, tag: str = "py3-none-any",
              requires: tuple[str, ...] = (), entry_points: dict[str, str] | None = None,
              direct_url: str | None = None, version: str = "0.1.0") -> Path:
    """An installed distribution as pip leaves it in site-packages."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    meta += "".join(f"Requires-Dist: {r}\n" for r in requires)
    purelib = "true" if tag.endswith("none-any") else "false"
    dist_files = {
        "METADATA": meta.encode(),
        "WHEEL": f"Wheel-Version: 1.0\nRoot-Is-Purelib: {purelib}\nTag: {tag}\n".encode(),
        "INSTALLER": b"pip\n",
    }
    if entry_points:
        dist_files["entry_points.txt"] = ("[headwater.transforms]\n" + "".join(
            f"{k} = {v}\n" for k, v in entry_points.items())).encode()
    if direct_url:
        dist_files["direct_url.json"] = json.dumps({"url": direct_url, "dir_info": {}}).encode()
    record = []
    for rel, data in [*files.items(), *((f"{info.name}/{k}", v) for k, v in dist_files.items())]:
        path = site / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        record.append(f"{rel},sha256={hashlib.sha256(data).hexdigest()},{len(data)}")
    record.append(f"{info.name}/RECORD,,")
    (info / "RECORD").write_text("\n".join(record) + "\n")
    return site


@pytest.fixture
def on_path(monkeypatch: pytest.MonkeyPatch):
    """Put folders on ``sys.path`` for one test and rescan the plugin registry."""
    from transforms.registry import default_registry

    added: list[str] = []

    def add(folder: Path, *modules: str) -> None:
        monkeypatch.syspath_prepend(str(folder))
        added.extend(modules)
        default_registry.cache_clear()

    yield add
    for m in added:
        sys.modules.pop(m, None)
    default_registry.cache_clear()


PLUGIN_SRC = b"def make(*, field='x'):\n    def f(record, ctx):\n        return record\n    return f\n"


def test_builtins_only_lambda_artifact_holds_the_runtime_subset_and_is_under_1_mb(tmp_path):
    art = build(stack(BUILTINS_ONLY), tmp_path / "out", tmp_path / "wheels")
    files = names(art.path)
    assert art.path == tmp_path / "out" / "orders-lambda.zip"
    assert files == sorted(files)
    for expected in (MANIFEST_NAME, "runtimes/aws/handler.py", "runtimes/core/engine.py",
                     "runtimes/core/formats.py", "runtimes/core/manifest.py", "transforms/contract.py",
                     "transforms/builtins/cents.py", "orjson/__init__.py"):
        assert expected in files
    tops = {f.split("/")[0] for f in files}
    assert not tops & {"boto3", "botocore", "pydantic", "pyarrow", "typer", "rich", "pulumi",
                       "yaml", "duckdb", "components"}
    # of the tool, only its import-light __init__ ships (the plugin API re-exports)
    assert [f for f in files if f.startswith("headwater/") and f.endswith(".py")] == [
        "headwater/__init__.py"]
    for plan_time in ("headwater/spec.py", "transforms/registry.py"):
        assert plan_time not in files
    assert not [f for f in files if f.startswith(("headwater/packaging/", "runtimes/local/"))]
    # bytecode for this interpreter next to each headwater module, nothing else cached
    cached = [f for f in files if "__pycache__" in f or f.endswith((".pyc", ".pyo"))]
    assert cached and art.bytecode and art.bytecode_python == sys.version.split()[0]
    for f in cached:
        head, _, rest = f.rpartition("/__pycache__/")
        stem, tag, ext = rest.rsplit(".", 2)
        assert (tag, ext) == (sys.implementation.cache_tag, "pyc"), f
        assert f"{head}/{stem}.py" in files, f
    own = [f for f in files if f.endswith(".py") and f.startswith(("runtimes/", "transforms/"))]
    assert len(own) == len([f for f in cached if f.startswith(("runtimes/", "transforms/"))])
    assert not [f for f in cached if f.startswith("orjson/")]  # compiled: not a pure dist
    assert art.size == art.path.stat().st_size < 1024 * 1024
    assert art.sha256 == hashlib.sha256(art.path.read_bytes()).hexdigest()
    assert set(art.distributions) == {"headwater", "orjson", "(manifest)"}


def test_zip_entries_have_fixed_times_modes_and_no_builder_paths(tmp_path):
    art = build(stack(BUILTINS_ONLY), tmp_path / "out", tmp_path / "wheels")
    root = str(Path(__file__).resolve().parents[2]).encode()
    with zipfile.ZipFile(art.path) as zf:
        for info in zf.infolist():
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.external_attr >> 16 == 0o100644
            assert not info.filename.startswith("/") and ".." not in info.filename.split("/")
            assert not info.is_dir()
            assert root not in zf.read(info) and str(tmp_path).encode() not in zf.read(info)


def test_manifest_in_the_artifact_names_the_spec_and_each_steps_import(tmp_path):
    art = build(stack(BUILTINS_ONLY), tmp_path / "out", tmp_path / "wheels")
    with zipfile.ZipFile(art.path) as zf:
        manifest = json.loads(zf.read(MANIFEST_NAME))
    assert manifest["pipeline"]["name"] == "orders"
    assert manifest["pipeline"]["source"]["format"] == "ndjson"
    assert [(s["use"], s["ref"], s["distribution"]) for s in manifest["steps"]] == [
        ("cents", "transforms.builtins.cents:make", "headwater"),
        ("require", "transforms.builtins.require:make", "headwater"),
    ]
    assert manifest["steps"][0]["settings"] == {"source": "value", "target": "value_cents"}


def test_same_inputs_in_two_folders_give_the_same_sha256(tmp_path):
    a = build(stack(BUILTINS_ONLY), tmp_path / "a", tmp_path / "wheels")
    b = build(stack(BUILTINS_ONLY), tmp_path / "b" / "deeper", tmp_path / "wheels")
    assert a.sha256 == b.sha256 and a.path.read_bytes() == b.path.read_bytes()
    other = dict(BUILTINS_ONLY, transforms=BUILTINS_ONLY["transforms"][:1])
    assert build(stack(other), tmp_path / "c", tmp_path / "wheels").sha256 != a.sha256


def test_plugin_goes_only_into_the_pipeline_that_uses_it_and_its_code_changes_the_sha(
        tmp_path, on_path):
    site = make_dist(tmp_path / "site", "hw-upper", {"hw_upper/__init__.py": PLUGIN_SRC},
                     entry_points={"upper": "hw_upper:make"})
    on_path(site, "hw_upper")
    uses = dict(BUILTINS_ONLY, name="uses",
                transforms=[*BUILTINS_ONLY["transforms"], {"use": "upper"}])
    st = stack(BUILTINS_ONLY, uses)
    plain = build_pipeline_artifact(st, st.pipeline("orders"), tmp_path / "o",
                                    wheelhouse=tmp_path / "w", offline=True)
    first = build_pipeline_artifact(st, st.pipeline("uses"), tmp_path / "o",
                                    wheelhouse=tmp_path / "w", offline=True)
    assert not [f for f in names(plain.path) if f.startswith("hw_upper")]
    files = names(first.path)
    assert "hw_upper/__init__.py" in files
    assert "hw_upper-0.1.0.dist-info/entry_points.txt" in files
    # installer bookkeeping (and its absolute paths) stays out
    assert "hw_upper-0.1.0.dist-info/RECORD" not in files
    assert "hw_upper-0.1.0.dist-info/INSTALLER" not in files
    assert f"hw_upper/__pycache__/__init__.{sys.implementation.cache_tag}.pyc" in files
    # module, its bytecode, METADATA, WHEEL, entry points
    assert first.distributions["hw-upper"].files == 5

    again = build_pipeline_artifact(st, st.pipeline("uses"), tmp_path / "o",
                                    wheelhouse=tmp_path / "w", offline=True)
    assert again.reused and again.sha256 == first.sha256

    (site / "hw_upper" / "__init__.py").write_bytes(PLUGIN_SRC + b"# changed\n")
    changed = build_pipeline_artifact(st, st.pipeline("uses"), tmp_path / "o",
                                      wheelhouse=tmp_path / "w", offline=True)
    assert not changed.reused and changed.sha256 != first.sha256
    assert changed.sha256 == hashlib.sha256(changed.path.read_bytes()).hexdigest()


def test_requirements_follow_target_markers_and_skip_what_only_boto3_needs(tmp_path, on_path):
    site = make_dist(tmp_path / "site", "needs-six", {"needs_six.py": PLUGIN_SRC}, requires=(
        "boto3>=1", "six", 'not-installed-anywhere; sys_platform == "win32"',
        'urllib3; platform_machine == "aarch64"'))
    on_path(site)
    manifest = {"pipeline": {"source": {"format": "csv"}},
                "steps": [{"index": 0, "use": "x", "distribution": "needs-six"}]}
    provided = layout_for("aws").provided
    arm = {n.name for n in resolve(manifest, Target("3.12", "arm64", (2, 34)), provided)}
    x86 = {n.name for n in resolve(manifest, Target("3.12", "x86_64", (2, 34)), provided)}
    assert arm == {"orjson", "needs-six", "six", "urllib3"}
    assert x86 == {"orjson", "needs-six", "six"}  # boto3's own botocore/jmespath/... never
    parquet = dict(manifest, pipeline={"source": {"format": "auto"}})
    assert "pyarrow" in {n.name for n in resolve(parquet, Target("3.12", "x86_64"), provided)}


def test_offline_build_without_the_wheel_names_package_platform_and_cache(tmp_path):
    wheels = tmp_path / "empty-cache"
    with pytest.raises(MissingWheelError) as info:
        build(stack(BUILTINS_ONLY, arch=OTHER_ARCH, python="3.12"), tmp_path / "o", wheels)
    text = str(info.value)
    import orjson

    assert f"orjson=={orjson.__version__}" in text
    assert f"_{MACHINE[OTHER_ARCH]}" in text and "3.12" in text
    assert str(wheels) in text
    assert not (tmp_path / "o" / "orders-lambda.zip").exists()


def test_over_the_size_limit_names_the_largest_distributions_and_leaves_no_artifact(tmp_path):
    with pytest.raises(ArtifactTooLargeError) as info:
        build(stack(BUILTINS_ONLY), tmp_path / "o", tmp_path / "w", limits=Limits(zipped=60_000))
    text = str(info.value)
    assert "zipped" in text and "orders-lambda.zip" in text
    sizes = build(stack(BUILTINS_ONLY), tmp_path / "fits", tmp_path / "w").distributions
    big, small = sorted(("orjson", "headwater"), key=lambda d: -sizes[d].zipped)
    assert text.index(big) < text.index(small)  # largest first
    assert not (tmp_path / "o" / "orders-lambda.zip").exists()
    with pytest.raises(ArtifactTooLargeError, match="unzipped.*orjson"):
        build(stack(BUILTINS_ONLY), tmp_path / "o", tmp_path / "w",
              limits=Limits(unzipped=100_000))


def test_compiled_local_plugin_without_a_target_wheel_names_plugin_package_platform(
        tmp_path, on_path):
    site = make_dist(tmp_path / "site", "fastgeo", {
        "fastgeo/__init__.py": PLUGIN_SRC,
        f"fastgeo/_speed.{CP}-{MACHINE[HERE_ARCH]}-linux-gnu.so": b"\x7fELF not really",
    }, tag=f"{CP}-{CP}-linux_{MACHINE[HERE_ARCH]}", entry_points={"fast_geo": "fastgeo:make"},
        direct_url="file:///src/fastgeo")
    on_path(site, "fastgeo")
    spec = dict(BUILTINS_ONLY, transforms=[{"use": "fast_geo"}])
    with pytest.raises(NoPlatformWheelError) as info:
        build(stack(spec), tmp_path / "o", tmp_path / "w", offline=False)
    text = str(info.value)
    assert "'fast_geo'" in text and "fastgeo==0.1.0" in text
    assert f"manylinux_2_26_{MACHINE[HERE_ARCH]}" in text or "manylinux_2_34" in text

    # a wheel for the platform in the wheelhouse is what fixes it
    wheel = tmp_path / "w" / f"fastgeo-0.1.0-{CP}-{CP}-manylinux_2_17_{MACHINE[HERE_ARCH]}.whl"
    wheel.parent.mkdir()
    so = f"fastgeo/_speed.{CP}-{MACHINE[HERE_ARCH]}-linux-gnu.so"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("fastgeo/__init__.py", PLUGIN_SRC)
        zf.writestr(so, b"\x7fELF built for manylinux")
        zf.writestr("fastgeo-0.1.0.dist-info/METADATA", "Name: fastgeo\nVersion: 0.1.0\n")
    art = build(stack(spec), tmp_path / "o", tmp_path / "w")
    with zipfile.ZipFile(art.path) as zf:
        assert zf.read(so) == b"\x7fELF built for manylinux"


def test_unknown_transform_and_unpackaged_clouds_are_packaging_errors(tmp_path):
    spec = dict(BUILTINS_ONLY, transforms=[{"use": "no_such_transform"}])
    with pytest.raises(PackagingError, match="unknown transform 'no_such_transform'"):
        build(stack(spec), tmp_path / "o", tmp_path / "w")
    with pytest.raises(PackagingError, match="no packaging layout for cloud 'azure'"):
        layout_for("azure")
    with pytest.raises(PackagingError, match="nothing to package"):
        layout_for("local")


def test_lambda_target_platform_tags():
    t312 = layout_for("aws", "3.12", "arm64").target
    assert t312.platforms[0] == "manylinux_2_34_aarch64"
    assert "manylinux2014_aarch64" in t312.platforms
    assert not [p for p in t312.platforms if p.startswith("linux_")]
    assert layout_for("aws", "3.11", "x86_64").target.platforms[0] == "manylinux_2_26_x86_64"
    assert str(t312.tags()[0]) == "cp312-cp312-manylinux_2_34_aarch64"


def test_build_stack_checks_every_chain_before_writing_any_artifact(tmp_path):
    from headwater.packaging import build_stack

    broken = dict(BUILTINS_ONLY, name="broken", transforms=[{"use": "renam"}])
    with pytest.raises(PackagingError, match="pipeline 'broken', step 0: unknown transform "
                                             "'renam'. Did you mean: rename"):
        build_stack(stack(BUILTINS_ONLY, broken), tmp_path / "o", wheelhouse=tmp_path / "w",
                    offline=True)
    assert not (tmp_path / "o").exists()


def test_editable_plugin_is_packaged_from_a_wheel_of_its_source(tmp_path, on_path):
    source = Path(__file__).resolve().parents[2] / "examples" / "plugins" / "headwater-geo"
    # what `pip install -e` leaves: a dist-info whose RECORD has no module files and a
    # direct_url.json marking the source folder as editable
    site = make_dist(tmp_path / "site", "headwater-geo", {}, version="1.0.0",
                     entry_points={"country_name": "headwater_geo:make"})
    info = site / "headwater_geo-1.0.0.dist-info"
    (info / "direct_url.json").write_text(json.dumps(
        {"url": source.as_uri(), "dir_info": {"editable": True}}))
    on_path(source / "src", "headwater_geo")
    on_path(site)
    spec = dict(BUILTINS_ONLY, transforms=[{"use": "country_name"}])
    art = build(stack(spec), tmp_path / "o", tmp_path / "w")
    with zipfile.ZipFile(art.path) as zf:
        assert zf.read("headwater_geo/__init__.py") == (
            source / "src" / "headwater_geo" / "__init__.py").read_bytes()
        assert "headwater_geo-1.0.0.dist-info/entry_points.txt" in zf.namelist()
