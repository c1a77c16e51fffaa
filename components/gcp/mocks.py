"""Pulumi mocks that answer like GCP, for unit tests of programs that use headwater.

``pulumi.runtime.set_mocks(GcpMocks(), preview=False)`` before running a program: each
registration gets the id and outputs GCP would return (resource ids, self links, service
account emails, function URIs in GCP's own formats), and the provider functions headwater
calls (the project, the Cloud Storage service agent) answer for ``PROJECT``.
"""

from __future__ import annotations

import hashlib
import importlib
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
from pulumi import _types

__all__ = ["PROJECT", "PROJECT_NUMBER", "REGION", "GcpMocks", "gcp_outputs", "input_problems"]

PROJECT = "headwater-test"
PROJECT_NUMBER = "123456789012"
REGION = "europe-west1"
API = "https://www.googleapis.com"

_CALLS = {
    "gcp:organizations/getProject:getProject": {
        "id": f"projects/{PROJECT}", "projectId": PROJECT, "number": PROJECT_NUMBER,
        "name": PROJECT, "orgId": "", "folderId": "", "labels": {}, "effectiveLabels": {}},
    "gcp:storage/getProjectServiceAccount:getProjectServiceAccount": {
        "id": PROJECT, "project": PROJECT,
        "emailAddress": f"service-{PROJECT_NUMBER}@gs-project-accounts.iam.gserviceaccount.com",
        "member": f"serviceAccount:service-{PROJECT_NUMBER}"
                  "@gs-project-accounts.iam.gserviceaccount.com"},
}


def _suffix(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:7]


def gcp_outputs(typ: str, name: str, inputs: dict[str, Any], rid: str = "") -> tuple[str, dict[str, Any]]:
    """The id and state GCP would return for a resource of type ``typ``."""
    state = dict(inputs)
    if typ == "gcp:storage/bucket:Bucket":
        bucket = inputs.get("name") or rid or f"{name}-{_suffix(name)}"
        state.update(name=bucket, url=f"gs://{bucket}", selfLink=f"{API}/storage/v1/b/{bucket}",
                     project=PROJECT)
        return bucket, state
    if typ == "gcp:pubsub/topic:Topic":
        topic = inputs.get("name") or f"{name}-{_suffix(name)}"
        tid = f"projects/{PROJECT}/topics/{topic}"
        state.update(name=topic, project=PROJECT)
        return tid, state
    if typ == "gcp:pubsub/subscription:Subscription":
        sub = inputs.get("name") or f"{name}-{_suffix(name)}"
        state.update(name=sub, project=PROJECT)
        return f"projects/{PROJECT}/subscriptions/{sub}", state
    if typ == "gcp:serviceaccount/account:Account":
        email = f"{inputs['accountId']}@{PROJECT}.iam.gserviceaccount.com"
        sid = f"projects/{PROJECT}/serviceAccounts/{email}"
        state.update(email=email, name=sid, member=f"serviceAccount:{email}",
                     uniqueId=str(int(_suffix(name), 16)), project=PROJECT)
        return sid, state
    if typ == "gcp:cloudfunctionsv2/function:Function":
        fn, region = inputs["name"], inputs.get("location", REGION)
        service = dict(inputs.get("serviceConfig") or {})
        service.update(uri=f"https://{fn}-{_suffix(fn)}-ew.a.run.app",
                       service=f"projects/{PROJECT}/locations/{region}/services/{fn}")
        state.update(serviceConfig=service, state="ACTIVE",
                     url=f"https://{region}-{PROJECT}.cloudfunctions.net/{fn}",
                     environment="GEN_2")
        return f"projects/{PROJECT}/locations/{region}/functions/{fn}", state
    if typ == "gcp:bigquery/dataset:Dataset":
        ds = inputs["datasetId"]
        state.update(project=PROJECT,
                     selfLink=f"{API}/bigquery/v2/projects/{PROJECT}/datasets/{ds}")
        return f"projects/{PROJECT}/datasets/{ds}", state
    if typ == "gcp:bigquery/table:Table":
        ds, tb = inputs["datasetId"], inputs["tableId"]
        state.update(project=PROJECT, type="VIEW" if inputs.get("view") else "TABLE",
                     selfLink=f"{API}/bigquery/v2/projects/{PROJECT}/datasets/{ds}/tables/{tb}")
        return f"projects/{PROJECT}/datasets/{ds}/tables/{tb}", state
    if typ == "gcp:firestore/database:Database":
        db = inputs["name"]
        state.update(project=PROJECT, uid=_suffix(db))
        return f"projects/{PROJECT}/databases/{db}", state
    if typ == "gcp:storage/bucketObject:BucketObject":
        obj = inputs["name"]
        state.update(selfLink=f"{API}/storage/v1/b/{inputs['bucket']}/o/{obj}",
                     mediaLink=f"{API}/download/storage/v1/b/{inputs['bucket']}/o/{obj}")
        return f"{inputs['bucket']}-{obj}", state
    if typ == "gcp:storage/notification:Notification":
        nid = str(int(_suffix(name), 16) % 100)
        state.update(notificationId=nid,
                     selfLink=f"{API}/storage/v1/b/{inputs['bucket']}/notificationConfigs/{nid}")
        return f"{inputs['bucket']}/notificationConfigs/{nid}", state
    if typ.endswith(("IAMMember:IAMMember", "IamMember:IamMember",
                     "IAMMember", "IamMember")):
        state["etag"] = "BwX" + _suffix(name)
        return rid or f"{name}-iam", state
    return rid or f"{name}-id", state


class GcpMocks(pulumi.runtime.Mocks):
    """Answers registrations with :func:`gcp_outputs`; counts them in ``count``."""

    def __init__(self) -> None:
        self.count = 0

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.count += 1
        return gcp_outputs(args.typ, args.name, dict(args.inputs), args.resource_id or "")

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        try:
            return _CALLS[args.token]
        except KeyError:
            raise KeyError(f"GcpMocks has no answer for the provider function {args.token}") from None


def input_problems(typ: str, inputs: Mapping[str, Any]) -> list[str]:
    """Every input key, nested ones included, that pulumi_gcp's type for resource ``typ``
    does not have. Mocks accept anything, so a test runs this on each recorded
    registration: a misspelt nested key (``matches_prefix``) fails there, not in preview."""
    _, mod, cls_name = typ.split(":")
    cls = getattr(importlib.import_module(f"pulumi_gcp.{mod.split('/')[0]}"), cls_name)
    return _walk(inputs, _types.resource_types(cls), typ)


def _element(t: Any) -> Any:
    """The output type inside ``Optional[...]`` / ``Sequence[...]``, else None."""
    t = _types.unwrap_type(t)
    if typing.get_origin(t) in (list, Sequence) and typing.get_args(t):
        t = _types.unwrap_type(typing.get_args(t)[0])
    return t if isinstance(t, type) and _types.is_output_type(t) else None


def _walk(value: Any, types: Mapping[str, Any], where: str) -> list[str]:
    problems = []
    for key, item in value.items():
        if key == "__defaults":
            continue
        if key not in types:
            problems.append(f"{where}.{key}: no such input (known: {', '.join(sorted(types))})")
            continue
        inner = _element(types[key])
        if inner is None:
            continue
        items = item if isinstance(item, list) else [item]
        for n, one in enumerate(items):
            if isinstance(one, Mapping):
                at = f"{where}.{key}" + (f"[{n}]" if isinstance(item, list) else "")
                problems += _walk(one, _types.output_type_types(inner), at)
    return problems
