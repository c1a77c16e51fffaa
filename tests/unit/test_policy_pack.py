"""The CrossGuard pack (policy/): it imports, registers every rule with pulumi-policy as
a mandatory policy whose validate function *is* the rule ``headwater plan`` runs, and
pulumi-policy's own analyzer service reports through it what the plan reports."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pulumi_policy
import pytest
from google.protobuf import json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2
from pulumi_policy import policy as policy_module

from headwater.policies import RULES, evaluate
from headwater.program import Res

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pack(monkeypatch):
    """Run policy/__main__.py as the Pulumi CLI would, but keep what it hands to
    PolicyPack instead of serving it over gRPC."""
    seen: dict = {}

    class Recorder:
        def __init__(self, **kwargs):
            seen.update(kwargs)

    monkeypatch.setattr(pulumi_policy, "PolicyPack", Recorder)
    runpy.run_path(str(ROOT / "policy" / "__main__.py"), run_name="__main__")
    return seen


def _validate_of(policy):
    kind = type(policy).__name__
    return getattr(policy, f"_{kind}__validate")  # where pulumi-policy keeps the callback


def test_the_pack_registers_every_rule_as_a_mandatory_policy_with_the_same_function(pack):
    policies = pack["policies"]
    assert pack["name"] == "headwater"
    assert [p.name for p in policies] == [r.name for r in RULES]
    for policy, rule in zip(policies, RULES, strict=True):
        assert _validate_of(policy) is rule.validate
        assert policy.enforcement_level is pulumi_policy.EnforcementLevel.MANDATORY
        expected = (pulumi_policy.StackValidationPolicy if rule.stack
                    else pulumi_policy.ResourceValidationPolicy)
        assert type(policy) is expected


def _servicer(pack):
    return policy_module._PolicyAnalyzerServicer(
        pack["name"], "0.1.0", pack["policies"], pack["enforcement_level"])


def test_pulumi_policys_analyzer_lists_the_rules(pack):
    info = _servicer(pack).GetAnalyzerInfo(None, None)
    assert info.name == "headwater"
    assert [p.name for p in info.policies] == [r.name for r in RULES]
    assert all(p.enforcementLevel == analyzer_pb2.MANDATORY for p in info.policies)


def _struct(props: dict) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    json_format.ParseDict(props, out)
    return out


def test_the_analyzer_reports_what_the_plan_reports(pack):
    """A public, unguarded bucket and a wildcard role policy through pulumi-policy's own
    AnalyzeStack and Analyze (its proxies, its deserialisation) and through the plan."""
    bucket = Res("aws:s3/bucket:Bucket", "site", {"bucketPrefix": "site-"},
                 outputs={"bucket": "site-1", "arn": "arn:aws:s3:::site-1"},
                 urn="urn:pulumi:t::p::aws:s3/bucket:Bucket::site")
    policy = Res("aws:iam/rolePolicy:RolePolicy", "admin",
                 {"role": "r", "policy": json.dumps({"Statement": [
                     {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})},
                 urn="urn:pulumi:t::p::aws:iam/rolePolicy:RolePolicy::admin")
    policy.outputs = dict(policy.inputs)
    servicer = _servicer(pack)
    stack = servicer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=[
        analyzer_pb2.AnalyzerResource(type=r.typ, name=r.name, urn=r.urn,
                                      properties=_struct(r.outputs)) for r in (bucket, policy)
    ]), None)
    single = servicer.Analyze(analyzer_pb2.AnalyzeRequest(
        type=policy.typ, name=policy.name, urn=policy.urn,
        properties=_struct(policy.inputs)), None)
    got = {(d.policyName, d.urn, d.message.split("\n", 1)[1])
           for d in list(stack.diagnostics) + list(single.diagnostics)}
    expected = {(v.rule, (bucket if v.name == "site" else policy).urn,
                 f"{v.typ} {v.name!r}: {v.message}. Fix: {v.fix}")
                for v in evaluate([bucket, policy])}
    assert got == expected
    assert {rule for rule, _, _ in got} == {"no-public-access", "encryption-at-rest",
                                            "tls-only", "iam-no-wildcards"}


def test_the_analyzer_reports_the_azure_rows_as_the_plan_does(pack):
    """An Azure stack with an anonymous container, a subscription-wide Owner, a literal
    secret in app settings and an Event Grid subscription without a dead-letter, through
    pulumi-policy's proxies (lists of app settings, nested filters) and through the plan."""
    az = "azure-native:"
    sub = "/subscriptions/00000000-0000-4000-8000-000000000001"

    def res(typ: str, logical: str, **props) -> Res:
        return Res(az + typ, logical, dict(props), outputs=dict(props),
                   urn=f"urn:pulumi:t::p::{az}{typ}::{logical}")

    resources = [
        res("storage:BlobContainer", "raw", containerName="raw", accountName="a",
            publicAccess="Blob"),
        res("authorization:RoleAssignment", "owner", principalId="p", scope=sub,
            roleDefinitionId=f"{sub}/providers/Microsoft.Authorization/roleDefinitions/"
                             "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"),
        res("web:WebApp", "fn", name="fn", httpsOnly=True, siteConfig={
            "minTlsVersion": "1.2", "ftpsState": "Disabled", "appSettings": [
                {"name": "APPLICATIONINSIGHTS_CONNECTION_STRING", "value": "x"},
                {"name": "API_TOKEN", "value": "tok_live_1"}]}),
        res("eventgrid:SystemTopicEventSubscription", "created", systemTopicName="t",
            filter={"subjectBeginsWith": "/blobServices/default/containers/raw/blobs/in/"}),
    ]
    servicer = _servicer(pack)
    stack = servicer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=[
        analyzer_pb2.AnalyzerResource(type=r.typ, name=r.name, urn=r.urn,
                                      properties=_struct(r.outputs)) for r in resources]), None)
    singles = [servicer.Analyze(analyzer_pb2.AnalyzeRequest(
        type=r.typ, name=r.name, urn=r.urn, properties=_struct(r.inputs)), None)
        for r in resources]
    got = {(d.policyName, d.message.split("\n", 1)[1])
           for d in list(stack.diagnostics) + [d for s in singles for d in s.diagnostics]}
    expected = {(v.rule, f"{v.typ} {v.name!r}: {v.message}. Fix: {v.fix}")
                for v in evaluate(resources)}
    assert got == expected
    assert {rule for rule, _ in got} >= {"no-public-access", "iam-no-wildcards",
                                         "no-plain-secrets", "dead-letter"}
