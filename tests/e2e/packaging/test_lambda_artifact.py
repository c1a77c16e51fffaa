"""Lambda artifacts of the example stack (``Pulumi.aws.yaml``), built for real.

- For the deploy target (arm64, CPython 3.12): the compiled wheels are fetched from the
  package index into the shared wheel cache (``~/.cache/headwater/wheels`` or
  ``$HEADWATER_WHEELHOUSE``), once per machine.
- For the interpreter running the tests: binary wheels for 3.12 do not import on 3.11, so
  the artifact that is imported is built with ``headwater:python`` set to the running
  version and the running machine's architecture. It is unpacked and its handler runs in
  a subprocess whose ``sys.path`` is the artifact, the standard library and boto3 (which
  the Lambda runtime provides) and nothing else, against a moto server.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path

import boto3
import pytest

from headwater.packaging import build_pipeline_artifact, build_stack
from headwater.spec import load_stack_file
from headwater.testing import moto_server as headwater_moto_server
from runtimes.core.manifest import MANIFEST_NAME

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[3]
HERE_PY = f"{sys.version_info.major}.{sys.version_info.minor}"
HERE_ARCH = "arm64" if platform.machine().lower() in ("aarch64", "arm64") else "x86_64"
MIB = 1024 * 1024
REGION = "us-east-1"
# what the Lambda Python runtime provides: boto3 and what it imports
BOTO = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")
NEVER_INSIDE = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six",
                "pydantic", "typer", "rich", "pulumi", "pulumi_aws", "yaml", "duckdb",
                "components")


def _tops(path: Path) -> set[str]:
    with zipfile.ZipFile(path) as zf:
        return {n.split("/")[0] for n in zf.namelist()}


def _manifest(path: Path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read(MANIFEST_NAME))


@pytest.mark.slow
def test_example_stack_lambda_artifacts_for_the_deploy_target(example_plugin, tmp_path):
    stack = load_stack_file(ROOT / "Pulumi.aws.yaml")
    assert (stack.python, stack.arch) == ("3.12", "arm64")
    orders, signups = build_stack(stack, tmp_path / "dist")
    assert [orders.path.name, signups.path.name] == ["orders-lambda.zip", "signups-lambda.zip"]

    for art in (orders, signups):
        with zipfile.ZipFile(art.path) as zf:
            files = set(zf.namelist())
        for expected in (MANIFEST_NAME, "runtimes/aws/handler.py", "runtimes/core/engine.py",
                         "runtimes/core/manifest.py", "transforms/contract.py",
                         "transforms/builtins/pseudonymize.py", "orjson/__init__.py",
                         # built for the function's platform, not for this machine
                         "orjson/orjson.cpython-312-aarch64-linux-gnu.so"):
            assert expected in files, (art.path.name, expected)
        assert not _tops(art.path) & set(NEVER_INSIDE)
        assert "headwater/spec.py" not in files and "transforms/registry.py" not in files
        # of the tool only the plugin API's import-light __init__ ships
        assert {f for f in files if f.startswith("headwater/") and f.endswith(".py")} == {
            "headwater/__init__.py"}
        assert art.size <= 50 * MIB and art.unzipped_size <= 250 * MIB

    # the plugin is in the pipeline that uses it, and only there
    assert {"headwater_geo", "headwater_geo-1.0.0.dist-info"} <= _tops(signups.path)
    assert not {t for t in _tops(orders.path) if t.startswith("headwater_geo")}
    # Parquet support only where the source can be Parquet (orders: format auto)
    assert "pyarrow" in _tops(orders.path) and "pyarrow" not in _tops(signups.path)
    assert signups.size < 1 * MIB

    om, sm = _manifest(orders.path), _manifest(signups.path)
    assert om["pipeline"] == json.loads(stack.pipeline("orders").model_dump_json(by_alias=True))
    assert [s["use"] for s in om["steps"]] == ["schema", "cents", "normalize", "enrich", "require"]
    assert {s["distribution"] for s in om["steps"]} == {"headwater"}
    geo = sm["steps"][2]
    assert (geo["use"], geo["ref"], geo["distribution"], geo["version"]) == (
        "country_name", "headwater_geo:make", "headwater-geo", "1.0.0")
    assert geo["settings"] == {"field": "country"}


def test_example_signups_artifact_is_byte_identical_across_build_folders(example_plugin,
                                                                          tmp_path):
    stack = load_stack_file(ROOT / "Pulumi.aws.yaml")
    spec = stack.pipeline("signups")
    one = build_pipeline_artifact(stack, spec, tmp_path / "one")
    two = build_pipeline_artifact(stack, spec, tmp_path / "elsewhere" / "two")
    assert not two.reused
    assert one.sha256 == two.sha256
    assert one.path.read_bytes() == two.path.read_bytes()


@pytest.fixture
def moto_server() -> Iterator[str]:
    with headwater_moto_server() as url:
        yield url


def _boto_only(folder: Path) -> Path:
    """A folder holding symlinks to boto3 and its imports only (the Lambda runtime's)."""
    folder.mkdir()
    for name in BOTO:
        spec = find_spec(name)
        assert spec is not None and spec.origin, name
        src = Path(spec.submodule_search_locations[0]) if spec.submodule_search_locations \
            else Path(spec.origin)
        (folder / src.name).symlink_to(src)
    return folder


CHILD = r"""
import json, sys, sysconfig
artifact, boto, event_path = sys.argv[1:4]
sys.path[:0] = [artifact, boto]
from runtimes.aws.handler import handler
with open(event_path) as f:
    result = handler(json.load(f), None)
heavy = ("pydantic", "pyarrow", "typer", "rich", "pulumi", "yaml", "duckdb", "headwater",
         "headwater.spec", "headwater.packaging", "transforms.registry")
print("@@" + json.dumps({
    "result": result,
    "heavy": sorted(m for m in heavy if m in sys.modules),
    "files": sorted({getattr(m, "__file__", None) or "" for m in list(sys.modules.values())}),
    "allowed": [artifact, boto, sysconfig.get_paths()["stdlib"],
                sysconfig.get_paths()["platstdlib"]],
    "geo": sys.modules["headwater_geo"].__file__,
}))
"""


def test_handler_from_unpacked_artifact_runs_one_record_with_a_clean_sys_path(
        example_plugin, moto_server, tmp_path):
    stack = load_stack_file(ROOT / "Pulumi.aws.yaml").model_copy(
        update={"python": HERE_PY, "arch": HERE_ARCH})
    spec = stack.pipeline("signups")
    # everything for this platform is installed here: no download, so offline must work
    art = build_pipeline_artifact(stack, spec, tmp_path / "dist",
                                  wheelhouse=tmp_path / "empty-wheels", offline=True)
    fn = tmp_path / "function"
    with zipfile.ZipFile(art.path) as zf:
        zf.extractall(fn)

    env = {"AWS_ENDPOINT_URL": moto_server, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION,
           "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    session = boto3.session.Session(aws_access_key_id="testing",
                                    aws_secret_access_key="testing", region_name=REGION)
    s3, sqs = (session.client(s, endpoint_url=moto_server) for s in ("s3", "sqs"))
    firehose = session.client("firehose", endpoint_url=moto_server)
    secrets = session.client("secretsmanager", endpoint_url=moto_server)
    for bucket in ("raw", "curated", "deadletter"):
        s3.create_bucket(Bucket=bucket)
    queue = sqs.create_queue(QueueName="signups")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket="raw", NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"],
                                 "Filter": {"Key": {"FilterRules": [
                                     {"Name": "prefix", "Value": spec.source.prefix}]}}}]})
    firehose.create_delivery_stream(
        DeliveryStreamName="signups", DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": "arn:aws:s3:::curated", "Prefix": "signups/"})
    key_arn = secrets.create_secret(Name=spec.secrets["email-key"],
                                    SecretString="k3y-for-tests")["ARN"]

    s3.put_object(Bucket="raw", Key="raw/signups/2024/05/01/a.csv",
                  Body=b"email,country,plan\nann@example.org,de,pro\n")
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10,
                                   AttributeNames=["All"])["Messages"]
    messages = [m for m in messages if "s3:TestEvent" not in m["Body"]]
    assert len(messages) == 1
    event = {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": m["Attributes"], "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
        "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": REGION,
    } for m in messages]}
    event_path = tmp_path / "event.json"
    event_path.write_text(json.dumps(event))

    env.update({"PATH": os.environ.get("PATH", ""),
                "HEADWATER_PIPELINE": "signups", "HEADWATER_STREAM": "signups",
                "HEADWATER_DEADLETTER_BUCKET": "deadletter",
                "HEADWATER_DEADLETTER_PREFIX": spec.deadletter.prefix,
                "HEADWATER_SECRETS": json.dumps({"email-key": key_arn})})
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", CHILD, str(fn), str(_boto_only(tmp_path / "boto")),
         str(event_path)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(next(line[2:] for line in proc.stdout.splitlines()
                             if line.startswith("@@")))

    assert report["result"] == {"batchItemFailures": []}
    assert report["heavy"] == []
    assert report["geo"] == str(fn / "headwater_geo" / "__init__.py")
    stray = [f for f in report["files"] if f and not f.startswith(tuple(report["allowed"]))]
    assert stray == []  # nothing came from the builder's site-packages

    delivered = []
    for obj in s3.list_objects_v2(Bucket="curated").get("Contents", []):
        body = s3.get_object(Bucket="curated", Key=obj["Key"])["Body"].read()
        delivered += [json.loads(line) for line in body.splitlines() if line.strip()]
    from transforms.builtins.pseudonymize import make
    from transforms.contract import Context

    step = spec.transforms[1]
    expected_email = make(**step.with_)({"email": "ann@example.org"},
                                        Context(secret=lambda name: "k3y-for-tests"))["email"]
    assert expected_email != "ann@example.org"
    assert delivered[0].pop("_headwater_id").endswith("-2-0")  # data line 2, no fan-out
    assert delivered == [{"email": expected_email, "country": "de", "plan": "pro",
                          "country_name": "Germany"}]
    assert s3.list_objects_v2(Bucket="deadletter").get("KeyCount", 0) == 0


PLUGIN_API_PROBE = r"""
import json, sys
artifact = sys.argv[1]
sys.path[:0] = [artifact]
from runtimes.core.manifest import load_manifest, load_steps
from transforms.contract import Context, Retryable
(step,) = load_steps(load_manifest(artifact + "/headwater_manifest.json"))
ctx = Context(pipeline="events")
out = {"ok": step.fn({"status": "ok"}, ctx)}
try:
    step.fn({"status": "later"}, ctx)
except Retryable as exc:
    out["retryable"] = str(exc)
import headwater
out["headwater"] = headwater.__file__
out["tool_modules"] = sorted(m for m in sys.modules if m.startswith("headwater."))
print("@@" + json.dumps(out))
"""


def test_plugin_using_the_plugin_api_runs_from_the_built_artifact(pip_install, monkeypatch,
                                                                  tmp_path):
    """``from headwater import SettingsError, Retryable`` in a plugin works inside a
    deployed artifact: the artifact ships headwater's import-light ``__init__`` (and none
    of the tool), and the plugin's Retryable is the engine's."""
    from headwater.spec import parse_stack
    from transforms.registry import default_registry

    site = pip_install(ROOT / "tests" / "plugins" / "headwater-apiplugin")
    monkeypatch.syspath_prepend(str(site))
    default_registry.cache_clear()
    try:
        stack = parse_stack({"cloud": "aws", "python": HERE_PY, "arch": HERE_ARCH, "pipelines": [{
            "name": "events", "source": {"prefix": "raw/events/"},
            "transforms": [{"use": "tp_strict", "with": {"allowed": ["ok"]}}],
            "sink": {"table": "events", "columns": {"status": "string"}}}]})
        art = build_pipeline_artifact(stack, stack.pipelines[0], tmp_path / "dist",
                                      wheelhouse=tmp_path / "wheels", offline=True)
    finally:
        default_registry.cache_clear()
    fn = tmp_path / "function"
    with zipfile.ZipFile(art.path) as zf:
        zf.extractall(fn)
        assert "headwater_apiplugin/__init__.py" in zf.namelist()
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", PLUGIN_API_PROBE, str(fn)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.split("@@", 1)[1])
    assert out["ok"] == {"status": "ok"}
    assert out["retryable"] == "the upstream system asked to try again"
    assert out["headwater"] == str(fn / "headwater" / "__init__.py")
    assert out["tool_modules"] == []
