"""The Cloud Functions source artifact (``headwater package`` for a GCP stack), built from
the orders pipeline of the shipped Pulumi.gcp.yaml with the real packaging API."""

from __future__ import annotations

import importlib.metadata as md
import zipfile
from pathlib import Path

from headwater.packaging import build_pipeline_artifact
from headwater.spec import load_stack_file

ROOT = Path(__file__).resolve().parents[2]


def _build(out: Path):
    stack = load_stack_file(ROOT / "Pulumi.gcp.yaml")
    return build_pipeline_artifact(stack, stack.pipeline("orders"), out, offline=True,
                                   wheelhouse=out / "wheels", reuse=False)


def test_source_zip_has_main_pinned_requirements_and_only_the_gcp_adapter(tmp_path):
    art = _build(tmp_path / "one")
    assert art.path.name == "orders-cloudfunctions.zip"
    with zipfile.ZipFile(art.path) as zf:
        names = zf.namelist()
        main = zf.read("main.py").decode()
        requirements = zf.read("requirements.txt").decode().splitlines()
    assert "from runtimes.gcp.main import handle" in main
    assert "runtimes/gcp/main.py" in names and "headwater_manifest.json" in names
    assert not [n for n in names if n.startswith(("runtimes/aws/", "runtimes/local/",
                                                  "components/", "google/", "pyarrow/"))]
    # the SDKs are requirements for the build service, pinned to what is installed here;
    # pyarrow because the source format is auto (Parquet possible)
    assert requirements == sorted(requirements)
    for name in ("functions-framework", "google-cloud-bigquery", "google-cloud-firestore",
                 "google-cloud-secret-manager", "google-cloud-storage", "orjson", "pyarrow"):
        assert f"{name}=={md.version(name)}" in requirements
    assert art.arch == "x86_64"  # Cloud Functions runs x86_64, whatever headwater:arch says


def test_same_inputs_in_two_folders_give_the_same_sha256(tmp_path):
    assert _build(tmp_path / "a").sha256 == _build(tmp_path / "b").sha256
