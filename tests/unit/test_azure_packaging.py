"""The Function App artifact (``AzureFunctionsLayout``): what the Functions host needs at
the root, wheels under ``.python_packages/lib/site-packages``, exactly the adapter's SDKs
and the chain's plugins, reproducible. Built offline from the installed distributions
(the running interpreter on x86_64 is the target), so no download can happen."""

from __future__ import annotations

import json
import platform
import sys
import zipfile
from pathlib import Path

import pytest

from headwater.packaging import PackagingError, build_pipeline_artifact, layout_for
from headwater.spec import load_stack_file, parse_stack
from runtimes.core.manifest import MANIFEST_NAME

ROOT = Path(__file__).resolve().parents[2]
HERE_PY = f"{sys.version_info.major}.{sys.version_info.minor}"
SITE = ".python_packages/lib/site-packages/"
pytestmark = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                                reason="the offline build uses this machine's x86_64 wheels")


def _stack():
    orders = load_stack_file(ROOT / "Pulumi.azure.yaml").pipeline("orders")
    return parse_stack({"headwater:cloud": "azure", "headwater:python": HERE_PY,
                        "headwater:arch": "x86_64",
                        "headwater:pipelines": [orders.model_dump(by_alias=True)]})


def _build(out: Path, wheels: Path):
    st = _stack()
    return build_pipeline_artifact(st, st.pipelines[0], out, wheelhouse=wheels, offline=True)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("out"), tmp_path_factory.mktemp("wheels"))


def _names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        return zf.namelist()


def test_host_files_at_the_root_and_the_adapter_beside_the_engine(artifact):
    files = _names(artifact.path)
    assert artifact.path.name == "orders-functionapp.zip"
    for expected in ("function_app.py", "host.json", MANIFEST_NAME,
                     "runtimes/azure/function_app.py", "runtimes/azure/handler.py",
                     "runtimes/core/engine.py", "transforms/builtins/enrich.py"):
        assert expected in files, expected
    assert not [f for f in files if f.startswith(("runtimes/aws/", "runtimes/local/",
                                                  "components/", "headwater/packaging/"))]
    with zipfile.ZipFile(artifact.path) as zf:
        root_app = zf.read("function_app.py").decode()
        host = json.loads(zf.read("host.json"))
    assert "from runtimes.azure.function_app import app" in root_app
    assert host["version"] == "2.0"
    assert host["extensionBundle"]["id"] == "Microsoft.Azure.Functions.ExtensionBundle"
    assert host["extensions"]["eventHubs"]["maxEventBatchSize"] == 100
    assert host["functionTimeout"] == "00:01:00"


def test_wheels_go_under_python_packages_with_the_sdks_and_nothing_plan_time(artifact):
    files = _names(artifact.path)
    tops = {f.split("/")[0] for f in files}
    assert tops == {".python_packages", "function_app.py", "host.json", MANIFEST_NAME,
                    "headwater", "runtimes", "transforms", "__pycache__"}
    site = {f[len(SITE):].split("/")[0] for f in files if f.startswith(SITE)}
    for needed in ("orjson", "azure", "msal", "cryptography"):
        assert needed in site, needed
    for sdk in ("azure/storage/blob/__init__.py", "azure/data/tables/__init__.py",
                "azure/eventhub/__init__.py", "azure/identity/__init__.py",
                "azure/functions/__init__.py"):
        assert SITE + sdk in files, sdk
    assert not site & {"boto3", "botocore", "pydantic", "pulumi", "pulumi_azure_native",
                       "typer", "rich", "yaml", "duckdb"}
    assert "pyarrow" in site  # source.format auto may meet Parquet
    assert {"azure-storage-blob", "azure-eventhub", "orjson"} <= set(artifact.distributions)


def test_same_inputs_give_the_same_sha256(artifact, tmp_path):
    again = _build(tmp_path / "other", tmp_path / "wheels")
    assert again.sha256 == artifact.sha256 and not again.reused


def test_arm64_is_refused_for_azure_functions():
    with pytest.raises(PackagingError, match="x86_64"):
        layout_for("azure", "3.12", "arm64")
    assert layout_for("azure", "3.12", "x86_64").target.platforms[0] == \
        "manylinux_2_36_x86_64"
