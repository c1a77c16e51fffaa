"""Pulumi components, one module per cloud. Never imports cloud SDKs (boto3 ...)."""

from __future__ import annotations

from typing import Any

import pulumi

from headwater.spec import SpecError, StackConfig, parse_stack

__all__ = ["deploy", "read_config"]

BUILT = ("aws",)
KEYS = ("cloud", "pipelines", "python", "arch", "region", "alarm_email", "kms_key")


def read_config(config: pulumi.Config) -> StackConfig:
    """Read ``headwater:*`` stack config into a validated :class:`StackConfig`."""
    raw: dict[str, Any] = {}
    for key in KEYS:
        value = config.get_object(key) if key == "pipelines" else config.get(key)
        if value is not None:
            raw[key] = value
    if "region" not in raw:
        region = pulumi.Config("aws").get("region")
        if region:
            raw["region"] = region
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
    if stack.cloud not in BUILT:
        raise pulumi.RunError(
            f"headwater:cloud is {stack.cloud!r}, which headwater cannot deploy yet; "
            f"built clouds: {', '.join(BUILT)}."
        )
    if stack.cloud == "aws":
        from .aws import deploy_stack

        return deploy_stack(stack)
    raise AssertionError(stack.cloud)
