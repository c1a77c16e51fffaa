"""Per-cloud artifact layouts: what a function's artifact holds and how big it may be.

A layout is one small class per cloud. The shared build (:mod:`.build`) resolves the
chain's distributions and writes the archive; the layout only says

- which Python platform the function runs on (:class:`Target`: wheel tags, markers),
- which distributions the platform runtime already provides (boto3 on Lambda),
- which headwater adapter package goes in next to the engine,
- the artifact's file name and the platform's size limits,
- with ``headwater:layers: shared``, which heavy distributions go into one layer shared
  by the stack's functions (:attr:`Layout.shared`) and where a layer's files go.

What a function never runs is trimmed from third-party distributions (:mod:`.trim`).

A new cloud is a subclass here and one entry in :data:`LAYOUTS`; what it ships is
:data:`SHIPPED_FOLDERS` plus its ``runtimes/<cloud>/`` folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

from packaging.tags import Tag, compatible_tags, cpython_tags

from .errors import PackagingError

__all__ = ["AwsLambdaLayout", "AzureFunctionsLayout", "CloudFunctionsLayout", "Layout", "Limits",
           "SparkLayout", "Target", "layout_for"]

MIB = 1024 * 1024

# What of headwater ships in every function artifact: whole folders, never a file list.
# The function's adapter folder (``Layout.adapter``) is added per cloud. Plan-time code
# (headwater/ but its import-light __init__, components/, runtimes/local/) stays out.
# All built-ins go in (about 20 KiB zipped): they import one another (schema uses
# timestamp, all use _settings), so a per-step subset would need an import-graph walk to
# save a few kilobytes, and a missed edge would only show up as an ImportError in the cloud.
SHIPPED_FOLDERS = ("transforms", "runtimes/core")
# package markers, and the plugin API (`from headwater import SettingsError, Retryable`)
SHIPPED_FILES = ("runtimes/__init__.py", "headwater/__init__.py")
# inside a shipped folder but plan-time only (scans package metadata)
PLAN_TIME_FILES = ("transforms/registry.py",)


@dataclass(frozen=True)
class Limits:
    """Size limits in bytes; ``None`` means no limit."""

    zipped: int | None = None
    unzipped: int | None = None


@dataclass(frozen=True)
class Target:
    """The Python a function runs on: CPython ``python`` on manylinux ``arch``."""

    python: str  # "3.12"
    arch: str  # "arm64" | "x86_64"
    glibc: tuple[int, int] = (2, 17)

    @property
    def machine(self) -> str:
        return {"arm64": "aarch64", "aarch64": "aarch64"}.get(self.arch, self.arch)

    @property
    def version(self) -> tuple[int, int]:
        major, minor = self.python.split(".")[:2]
        return int(major), int(minor)

    @property
    def platforms(self) -> list[str]:
        """manylinux platform tags the target's glibc accepts, best first.

        ``linux_*`` (locally built, unportable) wheels are deliberately not among them.
        """
        major, top = self.glibc
        tags = [f"manylinux_{major}_{minor}_{self.machine}" for minor in range(top, 16, -1)]
        return tags + [f"manylinux2014_{self.machine}"]

    @property
    def platform(self) -> str:
        """A short description for messages: ``manylinux_2_34_aarch64 / CPython 3.12``."""
        return f"{self.platforms[0]} / CPython {self.python}"

    def tags(self) -> list[Tag]:
        """Wheel tags this target accepts, in preference order."""
        interpreter = f"cp{self.version[0]}{self.version[1]}"
        return [*cpython_tags(self.version, platforms=self.platforms),
                *compatible_tags(self.version, interpreter, self.platforms)]

    def markers(self, extra: str = "") -> dict[str, str]:
        """The PEP 508 marker environment of the target (not of the builder)."""
        full = f"{self.python}.0" if self.python.count(".") == 1 else self.python
        return {
            "implementation_name": "cpython",
            "implementation_version": full,
            "os_name": "posix",
            "platform_machine": self.machine,
            "platform_python_implementation": "CPython",
            "platform_release": "",
            "platform_system": "Linux",
            "platform_version": "",
            "python_full_version": full,
            "python_version": ".".join(self.python.split(".")[:2]),
            "sys_platform": "linux",
            "extra": extra,
        }


class Layout:
    """What one cloud's function artifact looks like. Subclass per cloud."""

    cloud: ClassVar[str]
    kind: ClassVar[str]
    # distributions the platform's Python runtime already has; never packaged, and their
    # own requirements are not followed either
    provided: ClassVar[frozenset[str]] = frozenset()
    adapter: ClassVar[str]  # the headwater adapter package dir, e.g. "runtimes/aws"
    entry: ClassVar[str]  # the module the platform imports, e.g. "runtimes/aws/handler.py"
    limits: ClassVar[Limits] = Limits()
    # distributions the adapter imports that the platform does not provide (its SDKs)
    runtime_requires: ClassVar[tuple[str, ...]] = ()
    # where dependency wheels are unpacked ("" = the artifact root, beside runtimes/)
    site_packages: ClassVar[str] = ""
    # distributions that `headwater:layers: shared` moves out of the function artifacts
    # into one layer (with their requirements); () when the platform has no layers
    shared: ClassVar[tuple[str, ...]] = ()
    layer_root: ClassVar[str] = ""  # the folder of a layer zip that lands on sys.path

    def __init__(self, python: str = "3.12", arch: str = "arm64") -> None:
        self.target = self.make_target(python, arch)

    def make_target(self, python: str, arch: str) -> Target:
        return Target(python, arch)

    def artifact_name(self, pipeline: str) -> str:
        return f"{pipeline}-{self.kind}.zip"

    def layer_name(self) -> str:
        return f"shared-layer-{self.kind}.zip"

    def shipped_folders(self) -> tuple[str, ...]:
        """The headwater folders this artifact holds: the neutral core and the adapter."""
        return (*SHIPPED_FOLDERS, self.adapter)

    def extra_files(self, manifest: dict[str, Any]) -> dict[str, bytes]:
        """Layout-specific files at the artifact root (``requirements.txt``, ``host.json`` ...)."""
        return {}


class AwsLambdaLayout(Layout):
    """A Lambda deployment package: a zip whose root holds ``runtimes/``, ``transforms/``,
    the manifest and the unpacked dependency wheels; handler ``runtimes.aws.handler.handler``."""

    cloud = "aws"
    kind = "lambda"
    provided = frozenset({"boto3", "botocore"})
    adapter = "runtimes/aws"
    entry = "runtimes/aws/handler.py"
    # The code always goes through an S3 object (components/aws: the stack's artifacts
    # bucket), so the 50 MiB direct-upload limit never applies; what remains is 250 MiB
    # unzipped, the function's code and its layers together.
    limits = Limits(zipped=None, unzipped=250 * MIB)
    direct_upload = 50 * MIB  # for messages and docs only: headwater never uploads directly
    # pyarrow is ~150 MiB unzipped: one layer version shared by a stack's Parquet pipelines
    shared = ("pyarrow",)
    layer_root = "python/"  # Lambda puts /opt/python on sys.path

    def make_target(self, python: str, arch: str) -> Target:
        if arch not in ("arm64", "x86_64"):
            raise PackagingError(f"headwater:arch {arch!r} is not a Lambda architecture "
                                 "(arm64 or x86_64)")
        # python3.12+ runtimes run on Amazon Linux 2023 (glibc 2.34), older ones on AL2 (2.26)
        glibc = (2, 34) if tuple(int(p) for p in python.split(".")[:2]) >= (3, 12) else (2, 26)
        return Target(python, arch, glibc)


class CloudFunctionsLayout(Layout):
    """A Cloud Functions (gen2) source zip: ``main.py`` at the root (importing the entry
    point ``handle``), ``requirements.txt`` for the build service, the manifest,
    ``runtimes/``, ``transforms/`` and the unpacked wheels of the chain's plugins.

    The Google SDKs, functions-framework and orjson (and pyarrow for Parquet sources) are
    requirements, pinned to the versions installed where the build runs, not vendored:
    the build service installs them for its own platform, and they would make up most of
    the zip. Plugins stay vendored, so a private plugin needs no package index.
    """

    cloud = "gcp"
    kind = "cloudfunctions"
    # installed by the build service from requirements.txt
    requirements: ClassVar[tuple[str, ...]] = (
        "functions-framework", "google-cloud-bigquery", "google-cloud-firestore",
        "google-cloud-secret-manager", "google-cloud-storage", "orjson")
    provided = frozenset({*requirements, "pyarrow"})
    adapter = "runtimes/gcp"
    entry = "runtimes/gcp/main.py"
    # deployed from a Cloud Storage object: 100 MB zipped, 500 MB unzipped
    limits = Limits(zipped=100 * MIB, unzipped=500 * MIB)
    MAIN = b"# Cloud Functions entry point: headwater's GCP adapter.\n" \
           b"from runtimes.gcp.main import handle  # noqa: F401\n"

    def make_target(self, python: str, arch: str) -> Target:
        # Cloud Functions runs x86_64 only (headwater:arch is Lambda's); Ubuntu 22.04 images
        return Target(python, "x86_64", (2, 35))

    def extra_files(self, manifest: dict[str, Any]) -> dict[str, bytes]:
        import importlib.metadata as md

        from .resolve import PARQUET_FORMATS

        names = list(self.requirements)
        if manifest["pipeline"]["source"].get("format", "ndjson") in PARQUET_FORMATS:
            names.append("pyarrow")
        lines = []
        for name in sorted(names):
            try:
                lines.append(f"{name}=={md.version(name)}")
            except md.PackageNotFoundError:
                raise PackagingError(
                    f"{name} is not installed where `headwater package` runs, so its version "
                    "cannot be pinned in requirements.txt; install headwater[gcp]") from None
        return {"main.py": self.MAIN,
                "requirements.txt": ("\n".join(lines) + "\n").encode()}


class AzureFunctionsLayout(Layout):
    """A Function App package for the Python v2 programming model, run from the zip
    (``WEBSITE_RUN_FROM_PACKAGE``): ``function_app.py`` and ``host.json`` at the root,
    ``runtimes/`` and ``transforms/`` beside them, dependency wheels unpacked into
    ``.python_packages/lib/site-packages`` (which the Python worker puts on ``sys.path``).
    The azure-* SDKs the adapter uses ship inside: the Functions host does not provide
    them."""

    cloud = "azure"
    kind = "functionapp"
    adapter = "runtimes/azure"
    entry = "runtimes/azure/function_app.py"
    runtime_requires = ("azure-functions", "azure-identity", "azure-storage-blob",
                        "azure-data-tables", "azure-eventhub")
    site_packages = ".python_packages/lib/site-packages/"
    # Linux Consumption's deployment package limit is generous (the zip is mounted, not
    # unpacked); the unzipped bound only catches a runaway dependency.
    limits = Limits(unzipped=1024 * MIB)

    def make_target(self, python: str, arch: str) -> Target:
        if arch != "x86_64":
            raise PackagingError(f"headwater:arch {arch!r}: Azure Functions on Linux "
                                 "(Consumption plan) runs x86_64; set headwater:arch: x86_64")
        # the Python 3.11+ worker images are Debian 12 (glibc 2.36), older ones Debian 11
        glibc = (2, 36) if tuple(int(p) for p in python.split(".")[:2]) >= (3, 11) else (2, 31)
        return Target(python, arch, glibc)

    def extra_files(self, manifest: dict[str, Any]) -> dict[str, bytes]:
        limits = manifest["pipeline"].get("limits") or {}
        host = {
            "version": "2.0",
            "extensionBundle": {"id": "Microsoft.Azure.Functions.ExtensionBundle",
                                "version": "[4.*, 5.0.0)"},
            "extensions": {"eventHubs": {
                "maxEventBatchSize": int(limits.get("batch_size", 100)),
                "batchCheckpointFrequency": 1,
                "prefetchCount": 2 * int(limits.get("batch_size", 100))}},
            "functionTimeout": _timespan(int(limits.get("timeout_s", 60))),
            "logging": {"logLevel": {"default": "Information"}},
        }
        return {
            # the host indexes the root function_app.py; the app itself lives in the adapter
            "function_app.py": (b'"""Azure Functions entry: the headwater app (see '
                                b'runtimes/azure/function_app.py)."""\n\n'
                                b"from runtimes.azure.function_app import app  # noqa: F401\n"),
            "host.json": (json.dumps(host, indent=2, sort_keys=True) + "\n").encode(),
        }


class SparkLayout(Layout):
    """The archive a Spark backfill ships to its executors (``--archives zip#name``, or
    ``SparkContext.addArchive``): unpacked on each executor and put first on ``sys.path``
    by the task, so C extensions (orjson) load, which ``--py-files`` (zipimport) cannot.
    Root: ``runtimes/core``, ``runtimes/spark``, ``transforms/``, the manifest, the
    unpacked wheels of the chain's plugins and orjson, and ``backfill_main.py`` (the
    driver entry for ``spark-submit``).

    The target is the cluster's Python and machine (default: the builder's). pyspark and
    pyarrow come with every Spark runtime (EMR, Dataproc, Synapse, Databricks), so they are
    not shipped.
    """

    cloud = "spark"
    kind = "spark"
    provided = frozenset({"pyspark", "py4j", "pyarrow", "numpy", "pandas"})
    adapter = "runtimes/spark"
    entry = "runtimes/spark/task.py"
    MAIN = b"""\"\"\"spark-submit entry of a headwater backfill: puts the unpacked artifact
(--archives <zip>#headwater, or $HEADWATER_ARCHIVE) first on sys.path, then runs the
backfill of the manifest baked into it (runtimes/spark/main.py).\"\"\"

import os
import sys

name = os.environ.get("HEADWATER_ARCHIVE", "headwater")
here = os.path.dirname(os.path.abspath(__file__))
for d in (os.path.join(os.getcwd(), name), here):
    if os.path.isfile(os.path.join(d, "headwater_manifest.json")):
        sys.path.insert(0, d)
        break

from runtimes.spark.main import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
"""

    def make_target(self, python: str, arch: str) -> Target:
        # manylinux_2_28: older than every current Spark runtime's glibc (EMR 7: 2.34,
        # Dataproc 2.2 / Databricks 15: 2.35)
        return Target(python, arch, (2, 28))

    def extra_files(self, manifest: dict[str, Any]) -> dict[str, bytes]:
        return {"backfill_main.py": self.MAIN}


def _timespan(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


LAYOUTS: dict[str, type[Layout]] = {"aws": AwsLambdaLayout, "gcp": CloudFunctionsLayout,
                                     "azure": AzureFunctionsLayout, "spark": SparkLayout}


def layout_for(cloud: str, python: str = "3.12", arch: str = "arm64") -> Layout:
    try:
        cls = LAYOUTS[cloud]
    except KeyError:
        if cloud == "local":
            raise PackagingError("a local stack runs in-process (`headwater run`); there is "
                                 "nothing to package") from None
        raise PackagingError(f"no packaging layout for cloud {cloud!r} yet; available: "
                             f"{', '.join(sorted(LAYOUTS))}") from None
    return cls(python, arch)
