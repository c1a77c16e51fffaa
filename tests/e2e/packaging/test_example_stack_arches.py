"""The example stack (``Pulumi.aws.yaml``) on both Lambda architectures: ``headwater
package`` builds it for real (wheels from the shared wheel cache, fetched once per machine
from the package index), then the real Pulumi program runs under AWS-shaped mocks and
packages through the same folder, so it reuses those artifacts and deploys each one from
the artifacts bucket.

The ``orders`` pipeline carries pyarrow; on x86_64 its zip is over Lambda's 50 MiB
direct-upload limit, which no longer matters: the code goes through S3, and the limit
checked is 250 MiB unzipped.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from components.aws.mocks import AwsMocks
from headwater.cli import app
from headwater.testing.program import run_program

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
MIB = 1024 * 1024


def _project(tmp_path: Path, arch: str, layers: str) -> tuple[Path, dict]:
    doc = yaml.safe_load((ROOT / "Pulumi.aws.yaml").read_text(encoding="utf-8"))
    doc["config"]["headwater:arch"] = arch
    if layers != "none":
        doc["config"]["headwater:layers"] = layers
    (tmp_path / "Pulumi.aws.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    shutil.copy(ROOT / "__main__.py", tmp_path / "__main__.py")
    return tmp_path, doc["config"]


@pytest.mark.parametrize(("arch", "layers"), [("arm64", "none"), ("x86_64", "none"),
                                              ("x86_64", "shared")])
def test_example_stack_packages_and_plans(example_plugin, tmp_path, arch, layers):
    project, config = _project(tmp_path, arch, layers)
    result = CliRunner().invoke(app, ["package", "--stack", "aws", "--project-dir",
                                      str(project), "--out", str(project / "dist")])
    assert result.exit_code == 0, result.output
    # the table shows zipped and unzipped size, and the share of the 250 MiB limit
    assert "250.0" in result.output and "%)" in result.output and arch in result.output
    dist = project / "dist" / "aws"
    orders, signups = dist / "orders-lambda.zip", dist / "signups-lambda.zip"
    assert orders.is_file() and signups.is_file()
    layer = dist / "shared-layer-lambda.zip"
    assert layer.is_file() is (layers == "shared")
    if layers == "none":
        assert orders.stat().st_size > 40 * MIB  # pyarrow inside (x86_64: over 50 MiB)
    else:
        assert orders.stat().st_size < 1 * MIB and layer.stat().st_size > 40 * MIB

    before = {p.name: p.stat().st_mtime_ns for p in dist.glob("*.zip")}
    graph = run_program(config | ({"headwater:layers": layers} if layers != "none" else {}),
                        AwsMocks(), stack="aws", root=project)
    # the program packaged into the same folder and reused what the CLI built
    assert {p.name: p.stat().st_mtime_ns for p in dist.glob("*.zip")} == before
    for name, path in (("orders", orders), ("signups", signups)):
        fn = graph.one("aws:lambda/function:Function", f"{name}-function").inputs
        digest = hashlib.sha256(path.read_bytes()).digest()
        assert fn["s3Key"] == f"{digest.hex()}.zip"
        assert fn["sourceCodeHash"] == base64.b64encode(digest).decode()
        assert fn["architectures"] == [arch] and fn["runtime"] == "python3.12"
    versions = graph.of("aws:lambda/layerVersion:LayerVersion")
    if layers == "shared":
        (version,) = versions
        assert version.inputs["compatibleArchitectures"] == [arch]
        assert version.inputs["s3Key"] == f"{hashlib.sha256(layer.read_bytes()).hexdigest()}.zip"
        orders_fn = graph.one("aws:lambda/function:Function", "orders-function").inputs
        assert len(orders_fn["layers"]) == 1
        assert "layers" not in graph.one("aws:lambda/function:Function",
                                         "signups-function").inputs
    else:
        assert versions == []
