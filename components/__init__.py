"""Pulumi components: the shared parts here, one folder per cloud (``aws/`` ...).

Never imports a cloud's runtime SDK (boto3, google-cloud-*, azure-*): only Pulumi
providers. :data:`CLOUDS` is the one registry of deployable clouds; each names the
package whose ``deploy_stack(stack)`` builds a stack's components, whose
``check_stack(stack)`` runs its plan-time checks and whose ``Mocks`` answer like that
cloud (offered to ``headwater plan``, see :func:`headwater.program.offer_mocks`).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import pulumi

from headwater.program import offer_mocks
from headwater.spec import REGION_KEYS, SpecError, StackConfig, parse_stack

__all__ = ["CLOUDS", "deploy", "read_config"]

# cloud -> the components package that deploys it
CLOUDS: dict[str, str] = {"aws": "components.aws", "gcp": "components.gcp",
                         "azure": "components.azure"}
CHECK_ONLY_ENV = "HEADWATER_CHECK_ONLY"  # same name as headwater.program
KEYS = ("cloud", "pipelines", "python", "arch", "layers", "region", "alarm_email", "alerts",
        "tracing", "kms_key")
OBJECT_KEYS = ("pipelines", "alerts", "tracing")  # structured values: read as JSON


def read_config(config: pulumi.Config) -> StackConfig:
    """Read ``headwater:*`` stack config (and the provider's region setting, e.g.
    ``aws:region``) into a validated :class:`StackConfig`."""
    raw: dict[str, Any] = {}
    for key in KEYS:
        value = config.get_object(key) if key in OBJECT_KEYS else config.get(key)
        if value is not None:
            raw[key] = value
    for full in REGION_KEYS.values():
        namespace, _, name = full.partition(":")
        value = pulumi.Config(namespace).get(name)
        if value:
            raw[full] = value
    try:
        return parse_stack(raw, f"stack {pulumi.get_stack()}")
    except SpecError as exc:
        raise pulumi.RunError(str(exc)) from None


def deploy(config: pulumi.Config) -> list[pulumi.ComponentResource]:
    """Create the stack's components; a cloud that is not built yet is one clear error."""
    stack = read_config(config)
    if stack.cloud == "local":
        raise pulumi.RunError(
            "headwater:cloud is 'local': run this stack with `headwater run --stack "
            f"{pulumi.get_stack()}`, not `pulumi up`."
        )
    if stack.cloud not in CLOUDS:
        raise pulumi.RunError(
            f"headwater:cloud is {stack.cloud!r}, which headwater cannot deploy yet; "
            f"built clouds: {', '.join(CLOUDS)}."
        )
    cloud = importlib.import_module(CLOUDS[stack.cloud])
    offer_mocks(cloud.Mocks)  # `headwater plan`: answer like this cloud (else nothing)
    if os.environ.get(CHECK_ONLY_ENV):  # `headwater validate`: the checks, nothing created
        cloud.check_stack(stack)
        return []
    return cloud.deploy_stack(stack)
