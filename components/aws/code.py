"""Where the functions' code comes from: the stack's artifacts bucket, one S3 object per
artifact keyed by its sha256, and the optional shared layer.

Every Lambda of a stack takes its code from an S3 object (``s3_bucket``, ``s3_key``,
``s3_object_version``), never as a direct upload, so there is one path whatever the
size: the 50 MiB direct-upload limit never applies, only the 250 MiB unzipped one (which
``headwater package`` checks). The key is ``<sha256>.zip`` of the artifact's bytes, so
an unchanged artifact is the same object (no diff), and a changed one is a new object, a
new version and a new ``source_code_hash`` (the function's code is updated).

Lambda copies the object when the function is created or updated (``COPY`` storage
mode), reading it with the rights of whoever deploys: the function's role needs nothing
here. The bucket's only policy statement is the TLS-only Deny, which Lambda's HTTPS read
passes; with ``headwater:kms_key`` the deployer needs that key for the upload anyway.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from . import storage

__all__ = ["NONCURRENT_DAYS", "ArtifactStore", "Code", "code_hash", "sha256_of"]

# Old artifact versions (after a redeploy or a destroy) stay this long for a rollback by
# hand, then go; Lambda has its own copy of the code it runs.
NONCURRENT_DAYS = 30


def sha256_of(path: str | os.PathLike[str]) -> bytes:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").digest()


def code_hash(digest: bytes) -> str:
    """Lambda's ``CodeSha256`` form (base64 of the sha256): what ``source_code_hash`` takes."""
    return base64.b64encode(digest).decode()


@dataclass
class Code:
    """One artifact uploaded to the artifacts bucket."""

    object: aws.s3.BucketObjectv2
    sha256: str  # hex
    source_code_hash: str  # base64, Lambda's form

    def function_args(self) -> dict[str, Any]:
        """The code arguments of an ``aws.lambda_.Function`` or ``LayerVersion``."""
        return {"s3_bucket": self.object.bucket, "s3_key": self.object.key,
                "s3_object_version": self.object.version_id,
                "source_code_hash": self.source_code_hash}


def upload(name: str, bucket: aws.s3.Bucket, artifact: str | os.PathLike[str],
           opts: pulumi.ResourceOptions) -> Code:
    """``artifact`` (a zip file) as the object ``<sha256>.zip`` of ``bucket``."""
    if isinstance(artifact, pulumi.Archive | pulumi.Asset):
        raise TypeError(f"{name}: a function's artifact is a zip file path (its sha256 names "
                        f"the S3 object), not a {type(artifact).__name__}")
    path = os.fspath(artifact)
    if not os.path.isfile(path):
        raise ValueError(f"{name}: the artifact {path} is not a file; a function's artifact "
                         "is the zip that `headwater package` builds")
    digest = sha256_of(path)
    obj = aws.s3.BucketObjectv2(name, bucket=bucket.bucket, key=f"{digest.hex()}.zip",
                                source=pulumi.FileAsset(path), content_type="application/zip",
                                opts=opts)
    return Code(obj, digest.hex(), code_hash(digest))


class ArtifactStore(pulumi.ComponentResource):
    """``headwater:aws:ArtifactStore``: the stack's private bucket of function artifacts
    (encrypted, TLS only, versioned, noncurrent versions expire after
    :data:`NONCURRENT_DAYS`), and the shared layer versions built from it.

    :func:`components.aws.deploy_stack` creates one per stack; a :class:`Pipeline` made on
    its own creates its own.
    """

    def __init__(self, name: str, kms_key: str | None = None, *, owner: str | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("headwater:aws:ArtifactStore", name, None, opts)
        self._name = name
        self.layers: dict[str, aws.lambda_.LayerVersion] = {}
        self.bucket: aws.s3.Bucket = storage.secure_bucket(
            self._make, "bucket", name, kms_key=kms_key, prefix=storage.bucket_prefix(
                owner or f"{pulumi.get_project()}-{pulumi.get_stack()}", "code"))
        self.versioning = self._make(None, aws.s3.BucketVersioning, f"{name}-versioning", {
            "bucket": self.bucket.id, "versioning_configuration": {"status": "Enabled"}})
        self.lifecycle = self._make(None, aws.s3.BucketLifecycleConfiguration,
                                    f"{name}-old-versions", {
            "bucket": self.bucket.id,
            "rules": [
                {"id": "expire-old-artifacts", "status": "Enabled", "filter": {"prefix": ""},
                 "noncurrent_version_expiration": {"noncurrent_days": NONCURRENT_DAYS},
                 "expiration": {"expired_object_delete_marker": True}},
                {"id": "abort-incomplete-uploads", "status": "Enabled", "filter": {"prefix": ""},
                 "abort_incomplete_multipart_upload": {"days_after_initiation": 7}},
            ]}, depends_on=[self.versioning])
        self.register_outputs({"bucket": self.bucket.bucket})

    def _make(self, _key: str | None, cls: type, name: str, args: dict[str, Any],
              **opts: Any) -> Any:
        return cls(name, opts=pulumi.ResourceOptions(parent=self, **opts), **args)

    def upload(self, name: str, artifact: str | os.PathLike[str],
               parent: pulumi.Resource | None = None) -> Code:
        """Upload ``artifact`` as ``<sha256>.zip``; the object is a child of ``parent``
        (the pipeline whose function runs it), else of the store. Objects wait for the
        bucket's versioning, so each one gets a version id."""
        return upload(name, self.bucket, artifact, pulumi.ResourceOptions(
            parent=parent or self, depends_on=[self.versioning]))

    def shared_layer(self, artifact: Any, *, python: str, arch: str,
                     dists: list[str] | None = None) -> aws.lambda_.LayerVersion:
        """The layer version of the shared-layer zip ``artifact`` (a packaging Artifact or
        a path) holding ``dists``, one per distinct zip in the stack."""
        path = os.fspath(getattr(artifact, "path", artifact))
        digest = sha256_of(path).hex()
        if digest in self.layers:
            return self.layers[digest]
        n = len(self.layers)
        name = f"{self._name}-shared-layer" + (f"-{n + 1}" if n else "")
        code = self.upload(f"{name}-code", path)
        held = ", ".join(dists or ()) or "shared distributions"
        layer = aws.lambda_.LayerVersion(
            name, layer_name=_layer_name(pulumi.get_project(), pulumi.get_stack(), n),
            description=f"headwater: {held} for python{python} on {arch}"[:256],
            compatible_runtimes=[f"python{python}"], compatible_architectures=[arch],
            **code.function_args(), opts=pulumi.ResourceOptions(parent=self))
        self.layers[digest] = layer
        return layer


def _layer_name(project: str, stack: str, n: int) -> str:
    """A layer name (letters, digits, ``-``, ``_``; at most 64) for the stack's nth layer."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", f"{project}-{stack}-shared" + (f"-{n + 1}" if n
                                                                         else ""))
    if len(name) > 64:
        name = name[:55] + "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return name
