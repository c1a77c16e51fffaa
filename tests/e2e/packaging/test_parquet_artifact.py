"""A Parquet pipeline's Lambda artifact, built for real (pyarrow included), trimmed, and
run from the S3 object the stack uploads.

The artifact is built for a real Lambda target, CPython 3.12 on this machine's
architecture (pyarrow's wheels need glibc 2.28, newer than the Python 3.11 runtime's, so
3.12 is the oldest Lambda Python that can carry it), with the wheels of the shared wheel
cache (fetched once per machine), and run by a CPython 3.12 found here (the test is skipped
without one), as the function would run it. What the stack's component
registers is taken from the real program under mocks (the artifacts bucket's object: its
key and source file); that object is then put on a moto server as Pulumi would, read back
by its version id, unzipped, and its handler runs in a subprocess whose ``sys.path`` is
the unpacked code (and, with ``headwater:layers: shared``, the unpacked layer's
``python/`` folder, as Lambda's ``/opt/python``), the standard library and boto3 only.
"""

from __future__ import annotations

import glob
import io
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_lambda_artifact import BOTO, HERE_ARCH, REGION, _boto_only

from headwater.packaging import build_pipeline_artifact
from headwater.spec import parse_stack
from headwater.testing import moto_server as headwater_moto_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MIB = 1024 * 1024
PIPELINE = {
    "name": "orders",
    "source": {"prefix": "raw/orders/", "format": "parquet"},
    "transforms": [{"use": "cents", "with": {"source": "value", "target": "value_cents"}},
                   {"use": "require", "with": {"fields": ["order_id"]}}],
    "sink": {"table": "orders", "columns": {"order_id": "string", "value_cents": "bigint"}},
}


def _stack(layers: str = "none"):
    return parse_stack({"cloud": "aws", "python": "3.12", "arch": HERE_ARCH,
                        "layers": layers, "pipelines": [PIPELINE]})


def _python312() -> str | None:
    candidates = [shutil.which("python3.12"),
                  *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")))]
    for exe in filter(None, candidates):
        proc = subprocess.run([exe, "-c", "import sys; print(sys.version_info[:2])"],
                              capture_output=True, text=True)
        if proc.returncode == 0 and proc.stdout.strip() == "(3, 12)":
            return exe
    return None


PY312 = _python312()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """{"none": trimmed artifact, "shared": artifact with its layer} for Lambda's 3.12."""
    if PY312 is None:
        pytest.skip("no CPython 3.12 here to run a python3.12 Lambda artifact")
    out = tmp_path_factory.mktemp("dist")
    old = os.environ["PATH"]
    os.environ["PATH"] = f"{Path(PY312).parent}{os.pathsep}{old}"  # its bytecode compiler
    try:
        arts = {}
        for layers in ("none", "shared"):
            stack = _stack(layers)
            arts[layers] = build_pipeline_artifact(stack, stack.pipelines[0], out / layers)
    finally:
        os.environ["PATH"] = old
    return arts


def _unzip(data: bytes, where: Path) -> Path:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        zf.extractall(where)
    return where


PROBE = r"""
import json, pkgutil, sys
sys.path[:0] = sys.argv[1].split("|")
import pyarrow.parquet as pq
table = pq.read_table(sys.argv[2])
import transforms.builtins as b
mods = []
for m in pkgutil.iter_modules(b.__path__):
    __import__(f"transforms.builtins.{m.name}")
    mods.append(m.name)
import runtimes.aws.handler
print("@@" + json.dumps({"rows": table.to_pylist(), "builtins": sorted(mods),
                         "pyarrow": sys.modules["pyarrow"].__file__}))
"""


def _probe(paths: list[Path], parquet: Path) -> dict:
    env = {"PATH": os.environ.get("PATH", "")}
    proc = subprocess.run([PY312, "-I", "-S", "-c", PROBE,
                           "|".join(map(str, paths)), str(parquet)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.split("@@", 1)[1])


def test_trimmed_artifact_reads_parquet_and_imports_every_builtin(built, tmp_path):
    art = built["none"]
    with zipfile.ZipFile(art.path) as zf:
        files = zf.namelist()
    assert "pyarrow/parquet/core.py" in files
    assert not [f for f in files if f.startswith(("pyarrow/tests/", "pyarrow/include/"))]
    assert not [f for f in files if f.startswith("pyarrow/") and f.endswith(
        (".h", ".hpp", ".pyx", ".pxd", ".pxi", ".cc", ".pyi", "CMakeLists.txt"))]
    saved = art.trimmed["pyarrow"]
    assert saved["files"] > 100 and saved["unzipped"] > 2 * MIB  # headers, tests, sources
    assert art.unzipped_size <= 250 * MIB

    fn = _unzip(art.path.read_bytes(), tmp_path / "function")
    parquet = tmp_path / "orders.parquet"
    pq.write_table(pa.table({"order_id": ["o1", "o2"], "value": [12.5, 3.0]}), parquet)
    out = _probe([fn, _boto_only(tmp_path / "boto")], parquet)
    assert out["rows"] == [{"order_id": "o1", "value": 12.5}, {"order_id": "o2", "value": 3.0}]
    assert out["pyarrow"] == str(fn / "pyarrow" / "__init__.py")
    shipped = sorted({Path(f).stem for f in files if f.startswith("transforms/builtins/")
                      and f.endswith(".py") and not f.endswith("__init__.py")})
    assert out["builtins"] == shipped and "cents" in shipped and "timestamp" in shipped


def test_shared_layer_holds_pyarrow_and_the_function_reads_parquet_through_it(built, tmp_path):
    art = built["shared"]
    assert art.in_layer == ["pyarrow"] and art.layer is not None
    with zipfile.ZipFile(art.path) as zf:
        assert not [f for f in zf.namelist() if f.startswith("pyarrow")]
    assert art.size < 1 * MIB  # the function artifact stays small
    assert art.total_unzipped == art.unzipped_size + art.layer.unzipped_size
    fn = _unzip(art.path.read_bytes(), tmp_path / "function")
    opt = _unzip(art.layer.path.read_bytes(), tmp_path / "opt")
    parquet = tmp_path / "orders.parquet"
    pq.write_table(pa.table({"order_id": ["o1"], "value": [1.25]}), parquet)
    out = _probe([fn, opt / "python", _boto_only(tmp_path / "boto")], parquet)
    assert out["rows"] == [{"order_id": "o1", "value": 1.25}]
    assert out["pyarrow"] == str(opt / "python" / "pyarrow" / "__init__.py")


def _registered_code(artifact) -> dict:
    """What the real program registers for the function's code (under mocks)."""
    from components.aws import deploy_stack
    from components.aws.mocks import AwsMocks
    from headwater.testing.program import run

    stack = _stack("shared" if artifact.layer else "none")
    graph = run(lambda: deploy_stack(stack, artifact_for=lambda spec: artifact, export=False),
                AwsMocks(), stack="aws")
    objects = {r.name: r.inputs for r in graph.of("aws:s3/bucketObjectv2:BucketObjectv2")}
    fn = graph.one("aws:lambda/function:Function", "orders-function").inputs
    return {"function": objects["orders-code"], "layer": objects.get(
        "artifacts-shared-layer-code"), "s3_key": fn["s3Key"]}


CHILD = r"""
import json, sys
sys.path[:0] = sys.argv[1].split("|")
from runtimes.aws.handler import handler
with open(sys.argv[2]) as f:
    print("@@" + json.dumps(handler(json.load(f), None)))
"""


@pytest.mark.parametrize("layers", ["none", "shared"])
def test_parquet_object_end_to_end_through_the_code_read_back_from_the_uploaded_object(
        built, layers, tmp_path):
    art = built[layers]
    code = _registered_code(art)
    assert code["function"]["key"] == f"{art.sha256}.zip" == code["s3_key"]

    with headwater_moto_server() as url:
        session = boto3.session.Session(aws_access_key_id="testing",
                                        aws_secret_access_key="testing", region_name=REGION)
        s3, sqs, firehose = (session.client(s, endpoint_url=url)
                             for s in ("s3", "sqs", "firehose"))
        # the artifacts bucket as the stack makes it (versioned), and the upload Pulumi does
        s3.create_bucket(Bucket="code")
        s3.put_bucket_versioning(Bucket="code", VersioningConfiguration={"Status": "Enabled"})
        uploads = [code["function"]] + ([code["layer"]] if code["layer"] else [])
        versions = {}
        for obj in uploads:
            with open(obj["source"].path, "rb") as body:
                versions[obj["key"]] = s3.put_object(Bucket="code", Key=obj["key"],
                                                     Body=body)["VersionId"]
        # what Lambda does with s3_bucket / s3_key / s3_object_version
        def fetch(obj):
            return s3.get_object(Bucket="code", Key=obj["key"],
                                 VersionId=versions[obj["key"]])["Body"].read()

        paths = [_unzip(fetch(code["function"]), tmp_path / "task")]
        if code["layer"]:
            paths.append(_unzip(fetch(code["layer"]), tmp_path / "opt") / "python")
        paths.append(_boto_only(tmp_path / "boto"))

        for bucket in ("raw", "curated"):
            s3.create_bucket(Bucket=bucket)
        queue = sqs.create_queue(QueueName="orders")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        s3.put_bucket_notification_configuration(Bucket="raw", NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]})
        firehose.create_delivery_stream(
            DeliveryStreamName="orders", DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                "RoleARN": "arn:aws:iam::123456789012:role/firehose",
                "BucketARN": "arn:aws:s3:::curated", "Prefix": "orders/"})
        sink = io.BytesIO()
        pq.write_table(pa.table({"order_id": ["o1", "o2", None], "value": [12.5, 3.0, 1.0]}),
                       sink)
        s3.put_object(Bucket="raw", Key="raw/orders/2024/05/01/a.parquet", Body=sink.getvalue())
        messages = [m for m in sqs.receive_message(
            QueueUrl=queue, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
            if "s3:TestEvent" not in m["Body"]]
        event = {"Records": [{
            "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
            "attributes": m["Attributes"], "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
            "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": REGION,
        } for m in messages]}
        (tmp_path / "event.json").write_text(json.dumps(event))
        env = {"PATH": os.environ.get("PATH", ""), "AWS_ENDPOINT_URL": url,
               "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": REGION, "AWS_CONFIG_FILE": str(tmp_path / "none"),
               "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
               "HEADWATER_PIPELINE": "orders", "HEADWATER_STREAM": "orders",
               "HEADWATER_DEADLETTER_BUCKET": "curated", "HEADWATER_DEADLETTER_PREFIX":
               "deadletter/"}
        proc = subprocess.run([PY312, "-I", "-S", "-c", CHILD,
                               "|".join(map(str, paths)), str(tmp_path / "event.json")],
                              env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert json.loads(proc.stdout.split("@@", 1)[1]) == {"batchItemFailures": []}

        delivered, dead = [], []
        for obj in s3.list_objects_v2(Bucket="curated").get("Contents", []):
            body = s3.get_object(Bucket="curated", Key=obj["Key"])["Body"].read()
            if obj["Key"].startswith("orders/"):
                delivered += [json.loads(line) for line in body.splitlines() if line.strip()]
            else:
                dead.append(obj["Key"])
    assert sorted((r["order_id"], r["value_cents"]) for r in delivered) == [
        ("o1", 1250), ("o2", 300)]
    assert len(dead) == 1 and dead[0].startswith("deadletter/orders/")  # no order_id: kept
    assert set(BOTO).isdisjoint({p.name for p in paths[0].iterdir()})
