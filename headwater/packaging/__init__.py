"""Per-runtime packaging: one reproducible artifact per pipeline, carrying exactly the
plugins its chain uses, built for the cloud's platform rather than the builder's.

    from headwater.packaging import build_pipeline_artifact
    artifact = build_pipeline_artifact(stack, stack.pipeline("orders"), "dist/aws")
    artifact.path, artifact.sha256, artifact.size

Plan / package time only (it uses the registry and package metadata); nothing here is
ever inside an artifact.
"""

from .archive import Artifact, DistSize
from .build import build_layer, build_pipeline_artifact, build_stack
from .errors import ArtifactTooLargeError, MissingWheelError, NoPlatformWheelError, PackagingError
from .layouts import (
    AwsLambdaLayout,
    AzureFunctionsLayout,
    CloudFunctionsLayout,
    Layout,
    Limits,
    SparkLayout,
    Target,
    layout_for,
)
from .wheels import Wheelhouse, default_wheelhouse

__all__ = [
    "Artifact",
    "ArtifactTooLargeError",
    "AwsLambdaLayout",
    "AzureFunctionsLayout",
    "CloudFunctionsLayout",
    "DistSize",
    "Layout",
    "Limits",
    "MissingWheelError",
    "NoPlatformWheelError",
    "PackagingError",
    "SparkLayout",
    "Target",
    "Wheelhouse",
    "build_layer",
    "build_pipeline_artifact",
    "build_stack",
    "default_wheelhouse",
    "layout_for",
]
