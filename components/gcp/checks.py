"""Plan-time checks of pipeline specs for GCP, run before any resource is created."""

from __future__ import annotations

import hashlib
import re

import pulumi_gcp as gcp

from headwater.spec import PipelineSpec, StackConfig

from ..checks import check_stack as neutral_check_stack
from ..common import Location, PlanError, validate_overrides

__all__ = ["BIGQUERY_TYPES", "CHILDREN", "RULES", "GcpRules", "bigquery_type", "check_pipeline",
           "check_stack", "dataset_id", "database_id", "function_name", "locations",
           "max_delivery_attempts", "region_of", "short_id"]

# Children that take ``overrides.gcp.<key>``; IAM members take none on purpose: the
# bindings are the security model.
CHILDREN: dict[str, type] = {
    "bucket": gcp.storage.BucketArgs,
    "notification": gcp.storage.NotificationArgs,
    "topic": gcp.pubsub.TopicArgs,
    "subscription": gcp.pubsub.SubscriptionArgs,
    "dead_letter_topic": gcp.pubsub.TopicArgs,
    "dead_letter_subscription": gcp.pubsub.SubscriptionArgs,
    "source_bucket": gcp.storage.BucketArgs,
    "deadletter_bucket": gcp.storage.BucketArgs,
    "function": gcp.cloudfunctionsv2.FunctionArgs,
    "service_account": gcp.serviceaccount.AccountArgs,
    "invoker_account": gcp.serviceaccount.AccountArgs,
    "firestore": gcp.firestore.DatabaseArgs,
    "state_database": gcp.firestore.DatabaseArgs,
    "state_ttl": gcp.firestore.FieldArgs,
    "dataset": gcp.bigquery.DatasetArgs,
    "table": gcp.bigquery.TableArgs,
    "view": gcp.bigquery.TableArgs,
}
# Pub/Sub accepts max_delivery_attempts between 5 and 100.
MIN_DELIVERIES, MAX_DELIVERIES = 5, 100
MAX_ACK_DEADLINE_S = 600  # a push subscription's ack deadline bounds one delivery
# spec column type -> BigQuery standard SQL type
BIGQUERY_TYPES = {"string": "STRING", "int": "INT64", "bigint": "INT64", "double": "FLOAT64",
                  "float": "FLOAT64", "boolean": "BOOL", "timestamp": "TIMESTAMP",
                  "date": "DATE"}
_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")


def short_id(*parts: str, limit: int, sep: str = "-") -> str:
    """Lower-case letters, digits and ``sep``; at most ``limit`` characters, a hash
    suffix keeping long names distinct; starts with a letter."""
    name = re.sub(r"[^a-z0-9]+", sep, sep.join(parts).lower()).strip(sep)
    if not name or not name[0].isalpha():
        name = "hw" + sep + name
    if len(name) > limit:
        digest = hashlib.sha256(name.encode()).hexdigest()[:6]
        name = name[:limit - 7].rstrip(sep) + sep + digest
    return name


def function_name(stack: str, pipeline: str) -> str:
    """The Cloud Functions gen2 name (lower-case letters, digits, ``-``; at most 63)."""
    return short_id("headwater", stack, pipeline, limit=63)


def dataset_id(project: str, stack: str, pipeline: str) -> str:
    """A BigQuery dataset id: letters, digits and ``_``."""
    return short_id(project, stack, pipeline, limit=1024, sep="_")


def database_id(stack: str, pipeline: str, *role: str) -> str:
    """A Firestore database id: 4-63 lower-case letters, digits and ``-``."""
    return short_id("hw", stack, pipeline, *role, limit=63)


def bigquery_type(spec_type: str) -> str:
    """``decimal(p,s)`` -> NUMERIC (p - s <= 29, s <= 9) else BIGNUMERIC; ``ValueError``
    for an unknown type."""
    t = spec_type.strip().lower()
    if t in BIGQUERY_TYPES:
        return BIGQUERY_TYPES[t]
    m = _DECIMAL.match(t)
    if m:
        p, s = int(m.group(1)), int(m.group(2))
        return "NUMERIC" if s <= 9 and p - s <= 29 else "BIGNUMERIC"
    raise ValueError(spec_type)


def max_delivery_attempts(spec: PipelineSpec) -> int:
    """Deliveries before a notification is dead-lettered: limits.max_receive_count, raised
    to Pub/Sub's minimum of 5."""
    return min(MAX_DELIVERIES, max(MIN_DELIVERIES, spec.limits.max_receive_count))


def _override(spec: PipelineSpec, child: str, arg: str) -> object:
    return (spec.overrides.get("gcp", {}).get(child) or {}).get(arg)


def region_of(stack: StackConfig | None) -> str | None:
    return stack.region if stack is not None else None


def locations(spec: PipelineSpec) -> tuple[Location, list[Location]]:
    """The pipeline's source and every location it writes to. Buckets the pipeline creates
    are stand-ins (``<orders raw bucket>``): distinct from every other bucket. The sink is
    a BigQuery table, never an object, so only the dead-letter objects can loop."""
    src = spec.source
    raw = src.bucket or _override(spec, "bucket", "name") or f"<{spec.name} raw bucket>"
    dl = (spec.deadletter.bucket or _override(spec, "deadletter_bucket", "name")
          or f"<{spec.name} dead-letter bucket>")
    outs = [Location("dead-letter", str(dl), f"{spec.deadletter.prefix}{spec.name}/",
                     scheme="gs")]
    return Location("source", str(raw), src.prefix, src.suffix, scheme="gs"), outs


class GcpRules:
    """GCP's part of the plan-time checks (:mod:`components.checks` runs the rest)."""

    cloud = "gcp"
    fixed_schema = "the BigQuery table's schema comes from sink.columns"

    def locations(self, spec: PipelineSpec) -> tuple[Location, list[Location]]:
        return locations(spec)

    def check_pipeline(self, spec: PipelineSpec, stack: StackConfig | None = None) -> None:
        where = f"pipeline {spec.name!r}"
        validate_overrides(where, spec.overrides.get("gcp", {}), CHILDREN)
        bad = {c: t for c, t in spec.sink.columns.items() if not _known(t)}
        if bad:
            raise PlanError(
                f"{where}: sink.columns {', '.join(f'{c}: {t}' for c, t in bad.items())}: "
                f"not a type headwater maps to BigQuery; use one of "
                f"{', '.join(BIGQUERY_TYPES)} or decimal(p,s).")
        if "_headwater_id" in spec.sink.columns:
            raise PlanError(f"{where}: sink.columns names _headwater_id, which headwater adds "
                            "itself (the stable row id the de-duplicating view uses).")
        if spec.limits.timeout_s > MAX_ACK_DEADLINE_S:
            raise PlanError(
                f"{where}: limits.timeout_s={spec.limits.timeout_s} is over {MAX_ACK_DEADLINE_S}, "
                "the longest ack deadline of a Pub/Sub push subscription: Pub/Sub would "
                "deliver the notification again while the function still works on it. "
                f"Lower it to {MAX_ACK_DEADLINE_S} or less.")
        region = region_of(stack)
        if stack is not None and not region:
            raise PlanError("a GCP stack needs a region: set gcp:region (or headwater:region), "
                            "e.g. `pulumi config set gcp:region europe-west1`.")
        if region:
            _same_region(where, spec, region)


def _known(spec_type: str) -> bool:
    try:
        bigquery_type(spec_type)
    except ValueError:
        return False
    return True


def _same_region(where: str, spec: PipelineSpec, region: str) -> None:
    """The raw bucket, the topic's storage policy and the function live in ``region``:
    notifications and objects never leave it, and the function reads its bucket locally."""
    found = {
        "overrides.gcp.bucket.location": _override(spec, "bucket", "location"),
        "overrides.gcp.function.location": _override(spec, "function", "location"),
    }
    policy = _override(spec, "topic", "message_storage_policy")
    if isinstance(policy, dict):
        regions = policy.get("allowed_persistence_regions") or []
        found["overrides.gcp.topic.message_storage_policy.allowed_persistence_regions"] = (
            regions[0] if len(regions) == 1 else ",".join(regions) or None)
    for path, value in found.items():
        if value is not None and str(value).lower() != region.lower():
            raise PlanError(
                f"{where}: {path} is {value!r}, but the stack's region is {region!r}; the raw "
                "bucket, the topic's message storage and the function must share one region. "
                f"Drop the override or set gcp:region to {value!r}.")


RULES = GcpRules()


def check_pipeline(spec: PipelineSpec, region: str | None = None) -> None:
    """Refuse, with what to change, a pipeline spec the GCP component cannot deploy."""
    stack = StackConfig.model_construct(cloud="gcp", pipelines=[spec], region=region)
    check_stack(stack)


def check_stack(stack: StackConfig) -> None:
    """Every pipeline's checks, then sources that overlap and rings of pipelines."""
    neutral_check_stack(stack, RULES)
