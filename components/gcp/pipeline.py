"""``headwater:gcp:Pipeline``: one pipeline spec as GCS -> Pub/Sub -> Cloud Functions gen2
-> BigQuery, with per-record dead-letters in GCS and a dead-letter topic for
notifications that keep failing.

Every child has ``parent=self``, so options given to the component (providers, protect,
transforms, aliases) reach all of them. Children are attributes (``pipeline.topic``,
``pipeline.function`` ...) for programs that attach more; ``overrides.gcp.<child>`` in the
spec is merged into that child's arguments (see :data:`~.checks.CHILDREN`).

Why the push subscription is made here and not by an Eventarc trigger: the subscription
an Eventarc trigger creates belongs to Eventarc and cannot carry a dead-letter policy, so
a notification that always fails would be retried until Pub/Sub drops it after its
retention, and lost. This one has a dead-letter topic (with its own subscription, else
dead-lettered messages vanish too), exponential backoff, and pushes with an OIDC token of
a service account that may invoke this function's service and nothing else.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_gcp as gcp

from headwater.spec import PipelineSpec

from ..common import merge_args
from . import policy, storage
from .checks import (
    MAX_ACK_DEADLINE_S,
    check_pipeline,
    database_id,
    dataset_id,
    function_name,
    max_delivery_attempts,
    short_id,
)

__all__ = ["ENTRY_POINT", "Pipeline", "PipelineArgs"]

ENTRY_POINT = "handle"  # in main.py at the artifact's root (runtimes.gcp.main.handle)
IDEMPOTENCY_COLLECTION = "processed"  # one document per object generation (runtimes/gcp)
EXPIRES_FIELD = "expires_at"  # its TTL field
RETENTION = "604800s"  # 7 days, Pub/Sub's maximum for a subscription's unacked messages
MIN_BACKOFF, MAX_BACKOFF = "10s", "600s"


@dataclass
class PipelineArgs:
    """Arguments of :class:`Pipeline`: the spec, the function's source zip (a path, or
    any :class:`pulumi.Archive`), the region every regional child lives in."""

    spec: PipelineSpec
    artifact: str | os.PathLike[str] | pulumi.Archive
    region: str
    python: str = "3.12"
    dataset: str | None = None
    tracing: bool = True  # the request's Cloud Trace context on every log line


def _source(artifact: Any, pipeline: str) -> tuple[pulumi.Asset | pulumi.Archive, str]:
    """The upload and its object name: named by content, so a new artifact is a new object
    and Cloud Functions rebuilds, and an unchanged one shows no diff."""
    if isinstance(artifact, pulumi.Archive):
        return artifact, f"{pipeline}/function.zip"
    path = os.fspath(artifact)
    with open(path, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    return pulumi.FileAsset(path), f"{pipeline}/{digest[:32]}.zip"


class Pipeline(pulumi.ComponentResource):
    """One headwater pipeline on GCP. See README's GCP section for what it creates."""

    def __init__(self, name: str, args: PipelineArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("headwater:gcp:Pipeline", name, None, opts)
        spec = args.spec
        check_pipeline(spec, args.region)
        self.spec = spec
        self._name = name
        self._overrides: dict[str, dict[str, Any]] = dict(spec.overrides.get("gcp", {}))
        region = args.region
        invoke = pulumi.InvokeOutputOptions(parent=self)
        project = gcp.organizations.get_project_output(opts=invoke)
        self.project_id, number = project.project_id, project.number
        gcs_agent = gcp.storage.get_project_service_account_output(opts=invoke).member
        pubsub_agent = policy.service_agent(number, "gcp-sa-pubsub")
        gcf_agent = policy.service_agent(number, "gcf-admin-robot")
        stack = pulumi.get_stack()

        self._identities(stack)
        self._raw_bucket(region)
        self._notifications(region, gcs_agent)
        self._lookups(stack, region)
        self._state(stack, region)
        self._sink(stack, region)
        self._deadletter_bucket(region)
        self._secrets()
        self._function(stack, region, args, gcf_agent)
        self._push(pubsub_agent)

        self.bigquery_query = pulumi.Output.all(self.project_id, self.dataset.dataset_id,
                                                self.view.table_id).apply(
            lambda p: f"SELECT * FROM `{p[0]}.{p[1]}.{p[2]}` LIMIT 10")
        self.register_outputs({
            "bucket_name": self.bucket.name, "topic_id": self.topic.id,
            "subscription_id": self.subscription.id,
            "dead_letter_topic_id": self.dead_letter_topic.id,
            "function_name": self.function.name, "function_uri": self.function.url,
            "table_id": self.table.id, "view_id": self.view.id,
            "deadletter_bucket_name": self.deadletter_bucket.name,
            "state_database": self.state_database.name,
            "bigquery_query": self.bigquery_query,
        })

    # -- parts ------------------------------------------------------------------------

    def _identities(self, stack: str) -> None:
        """The function's own service account, and the one Pub/Sub pushes as."""
        name = self.spec.name
        self.service_account = self._make("service_account", gcp.serviceaccount.Account,
                                          f"{self._name}-function-sa", {
            "account_id": short_id("hw", name, "fn", limit=30),
            "display_name": f"headwater {stack} {name}: function"})
        self.invoker_account = self._make("invoker_account", gcp.serviceaccount.Account,
                                          f"{self._name}-push-sa", {
            "account_id": short_id("hw", name, "push", limit=30),
            "display_name": f"headwater {stack} {name}: Pub/Sub push to the function"})
        self.fn_member = policy.member(self.service_account.email)
        self.invoker_member = policy.member(self.invoker_account.email)

    def _raw_bucket(self, region: str) -> None:
        """Raw objects: the replay source, kept retention_days under the source prefix."""
        src = self.spec.source
        if src.bucket:
            self.bucket = gcp.storage.Bucket.get(f"{self._name}-raw", src.bucket,
                                                 opts=pulumi.ResourceOptions(parent=self))
        else:
            self.bucket = storage.secure_bucket(
                self._make, "bucket", f"{self._name}-raw", region=region,
                expire=(src.prefix, self.spec.retention_days))
        self._grant(gcp.storage.BucketIAMMember, "raw-reader", "roles/storage.objectViewer",
                    self.fn_member, bucket=self.bucket.name)

    def _notifications(self, region: str, gcs_agent: pulumi.Input[str]) -> None:
        """Topic fed by the bucket's OBJECT_FINALIZE notification (JSON payload, source
        prefix), and the dead-letter topic with its own subscription."""
        storage_policy = {"allowed_persistence_regions": [region]}
        self.topic = self._make("topic", gcp.pubsub.Topic, f"{self._name}-topic", {
            "message_storage_policy": storage_policy,
            "message_retention_duration": RETENTION})
        publish = self._grant(gcp.pubsub.TopicIAMMember, "gcs-publisher", "roles/pubsub.publisher",
                              gcs_agent, topic=self.topic.id)
        self.notification = self._make("notification", gcp.storage.Notification,
                                       f"{self._name}-notification", {
            "bucket": self.bucket.name, "topic": self.topic.id,
            "payload_format": "JSON_API_V1", "event_types": ["OBJECT_FINALIZE"],
            "object_name_prefix": self.spec.source.prefix}, depends_on=[publish])
        self.dead_letter_topic = self._make("dead_letter_topic", gcp.pubsub.Topic,
                                            f"{self._name}-dead-letter", {
            "message_storage_policy": storage_policy,
            "message_retention_duration": RETENTION})
        self.dead_letter_subscription = self._make(
            "dead_letter_subscription", gcp.pubsub.Subscription,
            f"{self._name}-dead-letter-sub", {
                "topic": self.dead_letter_topic.id, "ack_deadline_seconds": 60,
                "message_retention_duration": RETENTION, "retain_acked_messages": False,
                "expiration_policy": {"ttl": ""}})  # never expires

    def _lookups(self, stack: str, region: str) -> None:
        """A Firestore (native) database whose collections are the chain's lookup tables."""
        tables = list(self.spec.lookup_keys())
        self.firestore: gcp.firestore.Database | None = None
        self.collections = {t: self.spec.lookups.get(t, t) for t in tables}
        if not tables:
            return
        self.firestore = self._make("firestore", gcp.firestore.Database,
                                    f"{self._name}-firestore", {
            "name": database_id(stack, self.spec.name), "location_id": region,
            "type": "FIRESTORE_NATIVE", "concurrency_mode": "OPTIMISTIC",
            "point_in_time_recovery_enablement": "POINT_IN_TIME_RECOVERY_ENABLED",
            "delete_protection_state": "DELETE_PROTECTION_ENABLED"})
        # Firestore has no resource-level IAM: a project binding, conditioned on this database
        condition = {
            "title": f"headwater {self.spec.name} lookups",
            "description": "read the pipeline's own Firestore database only",
            "expression": pulumi.Output.concat('resource.name == "', self.firestore.id, '"')}
        self._grant(gcp.projects.IAMMember, "lookup-reader", "roles/datastore.viewer",
                    self.fn_member, project=self.project_id, condition=condition,
                    project_level=True)

    def _state(self, stack: str, region: str) -> None:
        """Which object generations were processed (runtimes/gcp/idempotency.py): a
        Firestore database of its own, so the function's read-write role on it grants no
        write to the lookup tables; old documents deleted by a TTL policy."""
        self.state_database = self._make("state_database", gcp.firestore.Database,
                                         f"{self._name}-state", {
            "name": database_id(stack, self.spec.name, "state"), "location_id": region,
            "type": "FIRESTORE_NATIVE", "concurrency_mode": "OPTIMISTIC",
            # only transient bookkeeping: `pulumi destroy` may remove it
            "delete_protection_state": "DELETE_PROTECTION_DISABLED",
            "deletion_policy": "DELETE"})
        self.idempotency_collection = IDEMPOTENCY_COLLECTION
        self.state_ttl = self._make("state_ttl", gcp.firestore.Field, f"{self._name}-state-ttl", {
            "database": self.state_database.name, "collection": IDEMPOTENCY_COLLECTION,
            "field": EXPIRES_FIELD, "ttl_config": {},
            # no single-field index on a timestamp written on every claim
            "index_config": {}})
        # Firestore has no resource-level IAM: a project binding, conditioned on this database
        condition = {
            "title": f"headwater {self.spec.name} state",
            "description": "read and write the pipeline's own state database only",
            "expression": pulumi.Output.concat('resource.name == "', self.state_database.id,
                                               '"')}
        self._grant(gcp.projects.IAMMember, "state-user", "roles/datastore.user",
                    self.fn_member, project=self.project_id, condition=condition,
                    project_level=True)

    def _sink(self, stack: str, region: str) -> None:
        spec = self.spec
        clustering = (self._overrides.get("table") or {}).get("clusterings")
        out = storage.sink(self._make, self._name, project=self.project_id,
                           dataset=dataset_id(pulumi.get_project(), stack, spec.name),
                           table=spec.sink.table, partition=spec.sink.partition,
                           columns=spec.sink.columns, region=region, clustering=clustering)
        self.dataset, self.table, self.view = out.dataset, out.table, out.view
        self._grant(gcp.bigquery.DatasetIamMember, "sink-writer", "roles/bigquery.dataEditor",
                    self.fn_member, dataset_id=self.dataset.dataset_id)

    def _deadletter_bucket(self, region: str) -> None:
        """Dead-letter objects go to deadletter.bucket, else a bucket of their own."""
        dl = self.spec.deadletter
        if dl.bucket:
            self.deadletter_bucket = gcp.storage.Bucket.get(
                f"{self._name}-deadletter", dl.bucket, opts=pulumi.ResourceOptions(parent=self))
        else:
            self.deadletter_bucket = storage.secure_bucket(
                self._make, "deadletter_bucket", f"{self._name}-deadletter", region=region)
        self._grant(gcp.storage.BucketIAMMember, "deadletter-writer",
                    "roles/storage.objectCreator", self.fn_member,
                    bucket=self.deadletter_bucket.name)

    def _secrets(self) -> None:
        """The function reads each secret it names from Secret Manager; never env values."""
        for logical, ref in sorted(self.spec.secrets.items()):
            self._grant(gcp.secretmanager.SecretIamMember, f"secret-{logical}",
                        "roles/secretmanager.secretAccessor", self.fn_member, secret_id=ref)

    def _function(self, stack: str, region: str, args: PipelineArgs,
                  gcf_agent: pulumi.Input[str]) -> None:
        spec = self.spec
        self.source_bucket = storage.secure_bucket(self._make, "source_bucket",
                                                   f"{self._name}-source", region=region)
        read_source = self._grant(gcp.storage.BucketIAMMember, "source-reader",
                                  "roles/storage.objectViewer", gcf_agent,
                                  bucket=self.source_bucket.name)
        upload, object_name = _source(args.artifact, spec.name)
        self.source_object = gcp.storage.BucketObject(
            f"{self._name}-source-zip", bucket=self.source_bucket.name, name=object_name,
            source=upload, opts=pulumi.ResourceOptions(parent=self))
        env: dict[str, Any] = {
            "HEADWATER_PIPELINE": spec.name,
            "HEADWATER_PROJECT": self.project_id,
            "HEADWATER_DATASET": self.dataset.dataset_id,
            "HEADWATER_TABLE": self.table.table_id,
            "HEADWATER_DEADLETTER_BUCKET": self.deadletter_bucket.name,
            "HEADWATER_DEADLETTER_PREFIX": spec.deadletter.prefix,
            "HEADWATER_LOOKUP_COLLECTIONS": json.dumps(self.collections, sort_keys=True),
            # Secret *references*, never values: the function reads them at run time.
            "HEADWATER_SECRETS": json.dumps(dict(spec.secrets), sort_keys=True),
            "HEADWATER_STATE_DATABASE": self.state_database.name,
            "HEADWATER_IDEMPOTENCY_COLLECTION": self.idempotency_collection,
            "HEADWATER_TIMEOUT_S": str(spec.limits.timeout_s),  # the claim's lease
            # the metrics' dimensions (runtimes/core/metrics.py)
            "HEADWATER_PULUMI_PROJECT": pulumi.get_project(),
            "HEADWATER_STACK": stack,
            "HEADWATER_TRACING": "1" if args.tracing else "0",
        }
        if self.firestore is not None:
            env["HEADWATER_FIRESTORE_DATABASE"] = self.firestore.name
        # exported as the stack output `function_settings`: `headwater replay` runs with it
        self.function_settings = env
        memory = spec.limits.memory_mb
        service: dict[str, Any] = {
            "available_memory": f"{memory}M",
            "timeout_seconds": spec.limits.timeout_s,
            "max_instance_count": spec.limits.max_concurrency,
            "min_instance_count": 0,
            # one notification per instance at a time: memory and time limits hold per object
            "max_instance_request_concurrency": 1,
            "service_account_email": self.service_account.email,
            # Pub/Sub push of this project counts as internal traffic
            "ingress_settings": "ALLOW_INTERNAL_ONLY",
            "all_traffic_on_latest_revision": True,
            "environment_variables": env,
        }
        if memory > 4096:  # Cloud Run needs 2 CPUs above 4 GiB, 4 above 8 GiB
            service["available_cpu"] = "2" if memory <= 8192 else "4"
        self.function = self._make("function", gcp.cloudfunctionsv2.Function,
                                   f"{self._name}-function", {
            "name": function_name(stack, spec.name), "location": region,
            "description": f"headwater pipeline {spec.name}",
            "build_config": {
                "runtime": "python" + args.python.replace(".", ""),
                "entry_point": ENTRY_POINT,
                "source": {"storage_source": {"bucket": self.source_bucket.name,
                                              "object": self.source_object.name}}},
            "service_config": service,
        }, depends_on=[read_source])
        self.invoker = self._grant(gcp.cloudrunv2.ServiceIamMember, "push-invoker",
                                   "roles/run.invoker", self.invoker_member,
                                   location=region, name=self.function.name)

    def _push(self, pubsub_agent: pulumi.Input[str]) -> None:
        """The push subscription feeding the function (see the module docstring)."""
        spec = self.spec
        uri = self.function.service_config.apply(lambda c: getattr(c, "uri", None))
        # Pub/Sub mints the OIDC token as the invoker account
        token = self._grant(gcp.serviceaccount.IAMMember, "push-token",
                            "roles/iam.serviceAccountTokenCreator", pubsub_agent,
                            service_account_id=self.invoker_account.name)
        dl_publish = self._grant(gcp.pubsub.TopicIAMMember, "dead-letter-publisher",
                                 "roles/pubsub.publisher", pubsub_agent,
                                 topic=self.dead_letter_topic.id)
        self.subscription = self._make("subscription", gcp.pubsub.Subscription,
                                       f"{self._name}-push", {
            "topic": self.topic.id,
            "ack_deadline_seconds": min(MAX_ACK_DEADLINE_S, max(10, spec.limits.timeout_s)),
            "message_retention_duration": RETENTION,
            "expiration_policy": {"ttl": ""},  # never expires
            "push_config": {"push_endpoint": uri,
                            "oidc_token": {"service_account_email": self.invoker_account.email,
                                           "audience": uri}},
            "retry_policy": {"minimum_backoff": MIN_BACKOFF, "maximum_backoff": MAX_BACKOFF},
            "dead_letter_policy": {"dead_letter_topic": self.dead_letter_topic.id,
                                   "max_delivery_attempts": max_delivery_attempts(spec)},
        }, depends_on=[token, dl_publish, self.invoker])
        # forwarding to the dead-letter topic acknowledges on the source subscription
        self._grant(gcp.pubsub.SubscriptionIAMMember, "dead-letter-subscriber",
                    "roles/pubsub.subscriber", pubsub_agent, subscription=self.subscription.name)

    # -- helpers ----------------------------------------------------------------------

    def _make(self, key: str | None, cls: type, name: str, args: dict[str, Any],
              **opts: Any) -> Any:
        """Create a child with ``parent=self`` and ``overrides.gcp.<key>`` merged in."""
        merged = merge_args(args, self._overrides.get(key) if key else None)
        return cls(name, opts=pulumi.ResourceOptions(parent=self, **opts), **merged)

    def _grant(self, cls: type, what: str, role: str, member: pulumi.Input[str], *,
               project_level: bool = False, **target: Any) -> Any:
        """One IAM member binding on the resource ``target`` names (see :mod:`.policy`)."""
        role = policy.checked(role, project_level=project_level,
                              condition=target.get("condition"))
        return cls(f"{self._name}-{what}", role=role, member=member,
                   opts=pulumi.ResourceOptions(parent=self), **target)
