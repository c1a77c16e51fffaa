"""Every function's code comes from an S3 object in the stack's artifacts bucket, keyed by
the artifact's sha256, with the object's version and the code hash; the optional shared
layer comes from the same bucket. The real pulumi_aws SDK under AWS-shaped mocks; the
recorded inputs are checked against pulumi_aws's own ``*Args`` signatures (mocks accept
anything)."""

from __future__ import annotations

import base64
import hashlib
import inspect
import json
import re
import types
import zipfile

import pulumi
import pulumi_aws as aws
import pytest
from test_aws_component_mocks import example_config, fake_artifact, run, run_program

from components.aws import ArtifactStore, Pipeline, PipelineArgs, deploy_stack
from components.aws.code import NONCURRENT_DAYS
from components.aws.policy import wildcard_problems
from headwater.spec import parse_stack

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2"
FUNCTION = "aws:lambda/function:Function"
LAYER = "aws:lambda/layerVersion:LayerVersion"
BUCKET = "aws:s3/bucket:Bucket"


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def assert_args(inputs: dict, args_cls: type, nested: dict[str, type] | None = None) -> None:
    """Every recorded input is a real argument of ``args_cls`` (nested ones of ``nested``)."""
    params = set(inspect.signature(args_cls.__init__).parameters) - {"__self__", "self"}
    for key, value in inputs.items():
        snake = _snake(key)
        assert snake in params, f"{key} is not an argument of {args_cls.__name__}"
        for item in value if isinstance(value, list) else [value]:
            if nested and snake in nested and isinstance(item, dict):
                assert_args(item, nested[snake], nested)


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _b64(path) -> str:
    return base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode()


@pytest.fixture
def graph(tmp_path, monkeypatch):
    return run_program(example_config(), fake_artifact(tmp_path), monkeypatch)


def test_function_code_is_the_artifacts_object_keyed_by_sha256_with_its_version(graph, tmp_path):
    artifact = tmp_path / "function.zip"
    (bucket,) = [b for b in graph.of(BUCKET) if b.name == "artifacts"]
    bucket_name = f"{bucket.inputs['bucketPrefix']}20240501"  # what the mocks name it
    for pipeline in ("orders", "signups"):
        fn = graph.one(FUNCTION, f"{pipeline}-function").inputs
        obj = graph.one(OBJECT, f"{pipeline}-code")
        assert obj.parent.endswith(f"headwater:aws:Pipeline::{pipeline}")
        assert obj.inputs["bucket"] == bucket_name
        assert obj.inputs["key"] == f"{_sha(artifact)}.zip"
        assert obj.inputs["source"].path == str(artifact)  # a FileAsset of the zip itself
        assert fn["s3Bucket"] == bucket_name and fn["s3Key"] == obj.inputs["key"]
        version = hashlib.sha256(f"{bucket_name}/{obj.inputs['key']}".encode()).hexdigest()[:32]
        assert fn["s3ObjectVersion"] == version  # the version the mocks gave the upload
        assert fn["sourceCodeHash"] == _b64(artifact)
        assert not {"code", "imageUri", "layers"} & set(fn)
        assert_args(obj.inputs, aws.s3.BucketObjectv2Args)
        assert_args({k: v for k, v in fn.items()}, aws.lambda_.FunctionArgs)
    assert graph.outputs["artifacts_bucket"] == bucket_name


def test_artifacts_bucket_is_private_encrypted_versioned_and_expires_old_versions(graph):
    kids = {r.typ: r for r in graph.children("artifacts", "headwater:aws:ArtifactStore")}
    bucket = kids[BUCKET].inputs
    assert bucket["bucketPrefix"].endswith("-code-") and len(bucket["bucketPrefix"]) <= 37
    block = kids["aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"].inputs
    assert all(block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy",
                                          "ignorePublicAcls", "restrictPublicBuckets"))
    sse = kids["aws:s3/bucketServerSideEncryptionConfiguration:"
               "BucketServerSideEncryptionConfiguration"].inputs["rules"][0]
    assert sse["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}
    versioning = kids["aws:s3/bucketVersioning:BucketVersioning"].inputs
    assert versioning["versioningConfiguration"] == {"status": "Enabled"}
    life = kids["aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"].inputs
    rules = {r["id"]: r for r in life["rules"]}
    old = rules["expire-old-artifacts"]
    assert old["noncurrentVersionExpiration"] == {"noncurrentDays": NONCURRENT_DAYS}
    assert "days" not in old.get("expiration", {})  # the current artifact never expires
    assert_args(life, aws.s3.BucketLifecycleConfigurationArgs, {
        "rules": aws.s3.BucketLifecycleConfigurationRuleArgs,
        "filter": aws.s3.BucketLifecycleConfigurationRuleFilterArgs,
        "expiration": aws.s3.BucketLifecycleConfigurationRuleExpirationArgs,
        "noncurrent_version_expiration":
            aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs,
        "abort_incomplete_multipart_upload":
            aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs})
    # Lambda reads the code with the deployer's rights: the bucket's policy only denies
    # plain HTTP, and grants nobody anything
    policy = json.loads(kids["aws:s3/bucketPolicy:BucketPolicy"].inputs["policy"])
    assert [s["Effect"] for s in policy["Statement"]] == ["Deny"]
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert wildcard_problems(policy) == []
    # nor does the function's role get anything on it
    for role_policy in graph.of("aws:iam/rolePolicy:RolePolicy"):
        assert bucket["bucketPrefix"] not in role_policy.inputs["policy"]


def test_unchanged_artifact_gives_the_same_code_inputs_and_a_changed_one_new_ones(
        tmp_path, monkeypatch):
    artifact = fake_artifact(tmp_path)  # (a new fake_artifact would carry a new timestamp)
    first = run_program(example_config(), artifact, monkeypatch)
    again = run_program(example_config(), artifact, monkeypatch)
    keys = ("s3Bucket", "s3Key", "s3ObjectVersion", "sourceCodeHash")
    code = {k: first.one(FUNCTION, "orders-function").inputs[k] for k in keys}
    assert code == {k: again.one(FUNCTION, "orders-function").inputs[k] for k in keys}
    assert first.one(OBJECT, "orders-code").inputs["key"] == \
        again.one(OBJECT, "orders-code").inputs["key"]

    changed = tmp_path / "changed"
    changed.mkdir()
    path = fake_artifact(changed)
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("runtimes/aws/extra.py", "X = 1\n")
    other = run_program(example_config(), path, monkeypatch)
    fn = other.one(FUNCTION, "orders-function").inputs
    assert fn["s3Key"] == f"{_sha(path)}.zip" != code["s3Key"]
    assert fn["sourceCodeHash"] == _b64(path) != code["sourceCodeHash"]
    assert fn["s3ObjectVersion"] != code["s3ObjectVersion"]


def test_shared_layer_is_one_layer_version_from_the_bucket_on_the_functions_that_carry_it(
        tmp_path):
    function = fake_artifact(tmp_path)
    layer_zip = tmp_path / "shared-layer-lambda.zip"
    with zipfile.ZipFile(layer_zip, "w") as zf:
        zf.writestr("python/pyarrow/__init__.py", "")
    layer = types.SimpleNamespace(path=layer_zip, sha256=_sha(layer_zip))
    config = example_config()
    config["headwater:pipelines"] = [
        *config["headwater:pipelines"],
        dict(config["headwater:pipelines"][0], name="returns",
             source={"prefix": "raw/returns/", "format": "parquet"},
             overrides={"aws": {"function": {"layers": ["arn:aws:lambda:eu-west-1:"
                                                        "123456789012:layer:mine:3"]}}})]
    stack = parse_stack({**config, "headwater:layers": "shared"})

    def artifact_for(spec):  # what the packaging API gives: orders and returns carry pyarrow
        if spec.name == "signups":
            return types.SimpleNamespace(path=function, layer=None, in_layer=[])
        return types.SimpleNamespace(path=function, layer=layer, in_layer=["pyarrow"])

    graph = run(lambda: deploy_stack(stack, artifact_for=artifact_for, export=False))
    (version,) = graph.of(LAYER)
    assert version.parent.endswith("headwater:aws:ArtifactStore::artifacts")
    obj = graph.one(OBJECT, "artifacts-shared-layer-code")
    assert obj.inputs["key"] == f"{_sha(layer_zip)}.zip"
    inputs = version.inputs
    assert inputs["s3Bucket"] == obj.inputs["bucket"] and inputs["s3Key"] == obj.inputs["key"]
    assert inputs["s3ObjectVersion"] and inputs["sourceCodeHash"] == _b64(layer_zip)
    assert inputs["compatibleRuntimes"] == ["python3.12"]
    assert inputs["compatibleArchitectures"] == ["arm64"]
    assert "pyarrow" in inputs["description"]
    assert_args(inputs, aws.lambda_.LayerVersionArgs)
    arn = f"arn:aws:lambda:eu-west-1:123456789012:layer:{inputs['layerName']}:1"
    assert graph.one(FUNCTION, "orders-function").inputs["layers"] == [arn]
    # a user's own layers come after the shared one, not instead of it
    assert graph.one(FUNCTION, "returns-function").inputs["layers"] == [
        arn, "arn:aws:lambda:eu-west-1:123456789012:layer:mine:3"]
    assert "layers" not in graph.one(FUNCTION, "signups-function").inputs


def test_a_pipeline_made_on_its_own_brings_its_own_artifacts_store(tmp_path):
    stack = parse_stack(example_config())
    artifact = fake_artifact(tmp_path)
    graph = run(lambda: Pipeline("solo", PipelineArgs(spec=stack.pipelines[1],
                                                      artifact=str(artifact))))
    (store,) = [r for r in graph.resources if r.typ == "headwater:aws:ArtifactStore"]
    assert store.name == "solo-artifacts" and store.parent.endswith("headwater:aws:Pipeline::solo")
    fn = graph.one(FUNCTION, "solo-function").inputs
    assert fn["s3Key"] == f"{_sha(artifact)}.zip"
    assert graph.one(BUCKET, "solo-artifacts").inputs["bucketPrefix"] == "solo-code-"


def test_an_archive_or_a_folder_instead_of_a_zip_file_is_refused_with_the_reason(tmp_path):
    stack = parse_stack(example_config())
    with pytest.raises(Exception, match="zip file path .* not a AssetArchive"):
        run(lambda: deploy_stack(stack, export=False, artifact_for=lambda spec:
                                 pulumi.AssetArchive({})))
    with pytest.raises(Exception, match="orders-code: the artifact .* is not a file"):
        run(lambda: deploy_stack(stack, export=False, artifact_for=lambda spec:
                                 pulumi.FileArchive(str(tmp_path))))


def test_store_is_exported_by_the_package():
    assert ArtifactStore.__module__ == "components.aws.code"
