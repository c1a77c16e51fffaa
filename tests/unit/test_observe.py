"""Dashboards, alarms, alert targets and tracing switches of every example stack, under each
cloud's Pulumi mocks: bodies are valid JSON, and every metric they name is the runtime's
own (runtimes/core/metrics.py) or one the service documents (documented_metrics.py)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import documented_metrics as documented
import pytest
import yaml

from components.observe import ALARMS, WIDGETS
from headwater.program import run_program
from runtimes.core.metrics import METRICS

ROOT = Path(__file__).resolve().parents[2]


def config(cloud: str, **extra: Any) -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / f"Pulumi.{cloud}.yaml").read_text(encoding="utf-8"))
    return {**doc["config"], **{f"headwater:{k}": v for k, v in extra.items()}}


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("art") / "function.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("main.py", "def handle(request):\n    return ''\n")
    return path


def mocks(cloud: str) -> Any:
    if cloud == "aws":
        from components.aws.mocks import AwsMocks
        return AwsMocks()
    if cloud == "gcp":
        from components.gcp.mocks import GcpMocks
        return GcpMocks()
    from components.azure.mocks import AzureMocks
    return AzureMocks()


def graph_of(cloud: str, artifact: Path, **extra: Any):
    return run_program(config(cloud, **extra), mocks(cloud), artifact=artifact, stack=cloud)


# -- AWS ---------------------------------------------------------------------------------


def _aws_metrics(body: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    out = []
    for w in body["widgets"]:
        for row in w.get("properties", {}).get("metrics", []):
            if isinstance(row[0], dict):  # a metric-math expression
                continue
            names = [x for x in row if not isinstance(x, dict)]
            out.append((names[0], names[1], dict(zip(names[2::2], names[3::2], strict=True))))
    return out


@pytest.fixture(scope="module")
def aws_graph(artifact):
    return graph_of("aws", artifact)


def test_aws_dashboard_widgets_name_only_emitted_or_documented_metrics(aws_graph):
    (dash,) = aws_graph.of("aws:cloudwatch/dashboard:Dashboard")
    body = json.loads(dash.inputs["dashboardBody"])
    name = dash.inputs["dashboardName"]
    assert name.startswith("headwater-") and name.endswith("-aws")
    metrics = _aws_metrics(body)
    assert metrics
    for ns, name, dims in metrics:
        if ns == "headwater":
            assert name in METRICS, name
            assert set(dims) == {"project", "stack", "pipeline"} and dims["stack"] == "aws"
        else:
            assert name in documented.AWS[ns], f"{ns} {name} is not documented"
    titles = [w["properties"]["title"] for w in body["widgets"] if w["type"] == "metric"]
    assert titles == list(WIDGETS) * 2  # one row per pipeline: orders, signups
    pipelines = {d["pipeline"] for ns, _, d in metrics if ns == "headwater"}
    assert pipelines == {"orders", "signups"}


def test_aws_runtime_dimensions_match_what_the_function_is_told(aws_graph):
    (dash,) = aws_graph.of("aws:cloudwatch/dashboard:Dashboard")
    body = json.loads(dash.inputs["dashboardBody"])
    fn = aws_graph.one("aws:lambda/function:Function", "orders-function").inputs
    env = fn["environment"]["variables"]
    dims = next(d for ns, _, d in _aws_metrics(body)
                if ns == "headwater" and d["pipeline"] == "orders")
    assert (dims["project"], dims["stack"]) == (env["HEADWATER_PULUMI_PROJECT"],
                                               env["HEADWATER_STACK"])


def test_aws_alarms_follow_the_shared_rules_and_the_spec_thresholds(artifact):
    graph = graph_of("aws", artifact, alerts={"deadletter_rate": 0.05,
                                              "oldest_message_minutes": 30,
                                              "webhook": "https://hooks.example.com/x",
                                              "target": "arn:aws:sns:eu-west-1:123456789012:ops"})
    alarms = {r.name: r.inputs for r in graph.children("orders")
              if r.typ == "aws:cloudwatch/metricAlarm:MetricAlarm"}
    assert {f"orders-{k}" for k in ("errors", "dlq-visible", "oldest-message",
                                    "deadletter-rate")} <= set(alarms)
    assert len(ALARMS) == 4
    assert alarms["orders-oldest-message"]["threshold"] == 1800
    rate = alarms["orders-deadletter-rate"]
    assert rate["threshold"] == 0.05
    queries = {q["id"]: q for q in rate["metricQueries"]}
    assert queries["rate"]["expression"] == "IF(received > 0, dead / received, 0)"
    assert queries["dead"]["metric"]["metricName"] == "DeadLettered"
    assert queries["dead"]["metric"]["namespace"] == "headwater"
    for a in alarms.values():
        for q in a.get("metricQueries", []):
            if "metric" in q:
                assert q["metric"]["metricName"] in METRICS
        if "metricName" in a:
            assert a["metricName"] in documented.AWS[a["namespace"]]
        # every alarm goes to the created topic and the existing one
        assert len(a["alarmActions"]) == 2
        assert a["alarmActions"][1] == "arn:aws:sns:eu-west-1:123456789012:ops"
    subs = {r.inputs["protocol"]: r.inputs for r in
            graph.of("aws:sns/topicSubscription:TopicSubscription")}
    assert subs["https"]["endpoint"] == "https://hooks.example.com/x"


def test_aws_alert_target_that_is_not_an_sns_arn_is_refused(artifact):
    import pulumi

    with pytest.raises(pulumi.RunError, match="alerts.target.*not an SNS topic ARN"):
        graph_of("aws", artifact, alerts={"target": "ops-topic"})


def test_aws_tracing_on_by_default_with_xray_writes_only_and_off_by_the_switch(aws_graph,
                                                                               artifact):
    fn = aws_graph.one("aws:lambda/function:Function", "orders-function").inputs
    assert fn["tracingConfig"] == {"mode": "Active"}
    policy = json.loads(aws_graph.one("aws:iam/rolePolicy:RolePolicy",
                                      "orders-role-policy").inputs["policy"])
    (xray,) = [s for s in policy["Statement"] if s.get("Sid") == "WriteTraces"]
    assert xray["Action"] == ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]
    assert xray["Resource"] == ["*"]
    off = graph_of("aws", artifact, tracing=False)
    fn = off.one("aws:lambda/function:Function", "orders-function").inputs
    assert fn["tracingConfig"] == {"mode": "PassThrough"}
    assert fn["environment"]["variables"]["HEADWATER_TRACING"] == "0"
    policy = json.loads(off.one("aws:iam/rolePolicy:RolePolicy",
                                "orders-role-policy").inputs["policy"])
    assert not [s for s in policy["Statement"] if s.get("Sid") == "WriteTraces"]


def test_wildcard_rule_allows_star_for_xray_writes_only():
    from headwater.policies.aws import wildcard_problems

    ok = {"Statement": [{"Effect": "Allow", "Action": ["xray:PutTraceSegments"],
                         "Resource": "*"}]}
    assert wildcard_problems(ok) == []
    mixed = {"Statement": [{"Effect": "Allow", "Resource": "*",
                            "Action": ["xray:PutTraceSegments", "xray:GetSamplingRules"]}]}
    assert wildcard_problems(mixed) == ["Statement[0]: Resource '*' has '*'"]


# -- GCP ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gcp_graph(artifact):
    return graph_of("gcp", artifact, alerts={"email": "ops@example.com",
                                             "webhook": "https://hooks.example.com/x",
                                             "target": "projects/my-project/topics/alerts"})


def test_gcp_log_metrics_extract_the_runtime_vocabulary(gcp_graph):
    metrics = {r.inputs["name"]: r.inputs for r in gcp_graph.of("gcp:logging/metric:Metric")}
    for name, m in metrics.items():
        metric = name.rsplit("/", 1)[-1]
        assert metric in METRICS
        assert m["valueExtractor"] == f"EXTRACT(jsonPayload.metrics.{metric})"
        assert 'jsonPayload.message="headwater request"' in m["filter"]
        assert 'jsonPayload.stack="gcp"' in m["filter"]
        assert m["labelExtractors"] == {"pipeline": "EXTRACT(jsonPayload.pipeline)"}


def test_gcp_dashboard_names_only_emitted_or_documented_metrics(gcp_graph):
    import re

    (dash,) = gcp_graph.of("gcp:monitoring/dashboard:Dashboard")
    body = json.loads(dash.inputs["dashboardJson"])
    log_names = {r.inputs["name"].replace("/", "_")
                 for r in gcp_graph.of("gcp:logging/metric:Metric")}
    charts = [t["widget"] for t in body["mosaicLayout"]["tiles"] if "xyChart" in t["widget"]]
    assert [c["title"] for c in charts] == list(WIDGETS) * 2
    for chart in charts:
        for ds in chart["xyChart"]["dataSets"]:
            q = ds["timeSeriesQuery"]
            if "prometheusQuery" in q:
                for series in re.findall(r"logging_googleapis_com:user_(\w+?)_sum",
                                         q["prometheusQuery"]):
                    assert series in log_names, series
            else:
                (metric,) = re.findall(r'metric.type="([^"]+)"', q["timeSeriesFilter"]["filter"])
                assert metric in documented.GCP, metric


def test_gcp_alert_policies_follow_the_rules_and_notify_every_channel(gcp_graph):
    channels = {r.inputs["type"]: r.inputs for r in
                gcp_graph.of("gcp:monitoring/notificationChannel:NotificationChannel")}
    assert channels["email"]["labels"] == {"email_address": "ops@example.com"}
    assert channels["webhook_tokenauth"]["labels"] == {"url": "https://hooks.example.com/x"}
    assert channels["pubsub"]["labels"] == {"topic": "projects/my-project/topics/alerts"}
    policies = {r.name: r.inputs for r in gcp_graph.of("gcp:monitoring/alertPolicy:AlertPolicy")}
    assert {f"orders-{r.key}" for r in ALARMS} <= set(policies)
    for p in policies.values():
        assert len(p["notificationChannels"]) == 3
        (cond,) = p["conditions"]
        if "conditionThreshold" in cond:
            (metric,) = __import__("re").findall(r'metric.type="([^"]+)"',
                                                 cond["conditionThreshold"]["filter"])
            assert metric in documented.GCP
    rate = policies["orders-deadletter-rate"]["conditions"][0]
    assert rate["conditionPrometheusQueryLanguage"]["query"].endswith("> 0.01")
    oldest = policies["orders-oldest-message"]["conditions"][0]["conditionThreshold"]
    assert oldest["thresholdValue"] == 900


# -- Azure -------------------------------------------------------------------------------

AG = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/ops/providers/"
      "microsoft.insights/actionGroups/oncall")


@pytest.fixture(scope="module")
def azure_graph(artifact):
    return graph_of("azure", artifact, alerts={"email": "ops@example.com",
                                               "webhook": "https://hooks.example.com/x",
                                               "target": AG})


def _kql_names(query: str) -> tuple[set[str], set[str]]:
    """(metric names read as m.metrics.<Name>, tables a query starts from)."""
    import re

    names = set(re.findall(r"m\.metrics\.(\w+)", query))
    tables = {query.split("|", 1)[0].strip()}
    return names, tables


def test_azure_workbook_names_only_emitted_or_documented_metrics(azure_graph):
    from runtimes.core.metrics import ADAPTER_METRICS

    (wb,) = azure_graph.of("azure-native:applicationinsights:Workbook")
    body = json.loads(wb.inputs["serializedData"])
    emitted = set(METRICS) | set(ADAPTER_METRICS["azure"])
    widgets = [i for i in body["items"] if i["type"] in (3, 10)]
    assert [w["content"]["title"] for w in widgets] == list(WIDGETS) * 2
    for item in widgets:
        c = item["content"]
        if item["type"] == 3:
            names, tables = _kql_names(c["query"])
            assert names <= emitted, names - emitted
            assert tables <= documented.AZURE["tables"]
            if "m.metrics" in c["query"]:
                assert 'tostring(m.stack) == "azure"' in c["query"]
        else:
            for m in c["metrics"]:
                ns, name = m["metric"].split("--")
                (doc_ns,) = [k for k in documented.AZURE if k.lower() == ns]
                assert name in documented.AZURE[doc_ns], name
    uuid_name = wb.inputs["resourceName"]
    assert len(uuid_name) == 36 and uuid_name.count("-") == 4  # a workbook name is a GUID


def test_azure_alert_rules_follow_the_rules_and_notify_the_action_groups(azure_graph):
    (group,) = azure_graph.of("azure-native:monitor:ActionGroup")
    assert group.inputs["emailReceivers"][0]["emailAddress"] == "ops@example.com"
    assert group.inputs["webhookReceivers"][0]["serviceUri"] == "https://hooks.example.com/x"
    rules = {r.name: r.inputs for r in azure_graph.of("azure-native:monitor:ScheduledQueryRule")}
    assert {f"orders-{r.key}" for r in ALARMS} <= set(rules)
    for rule in rules.values():
        (cond,) = rule["criteria"]["allOf"]
        assert cond["operator"] == "GreaterThan" and cond["metricMeasureColumn"] == "n"
        names, tables = _kql_names(cond["query"])
        assert names <= set(METRICS) | {"Parked"}
        assert tables <= documented.AZURE["tables"]
        assert len(rule["actions"]["actionGroups"]) == 2 and rule["actions"]["actionGroups"][1] == AG
    assert rules["orders-deadletter-rate"]["criteria"]["allOf"][0]["threshold"] == 0.01
    assert rules["orders-oldest-message"]["criteria"]["allOf"][0]["threshold"] == 900


def test_azure_function_is_told_its_dimensions_and_the_tracing_switch(artifact):
    graph = graph_of("azure", artifact, tracing=False)
    app = graph.one("azure-native:web:WebApp", "orders-function").inputs
    settings = {s["name"]: s["value"] for s in app["siteConfig"]["appSettings"]}
    assert settings["HEADWATER_STACK"] == "azure" and settings["HEADWATER_TRACING"] == "0"
    assert settings["HEADWATER_PULUMI_PROJECT"]
    assert settings["AzureFunctionsJobHost__logging__applicationInsights__"
                    "enableDependencyTracking"] == "false"


def test_alerts_spec_refuses_plain_http_and_bad_addresses_with_their_path():
    from headwater.spec import SpecError, parse_stack

    base = {"pipelines": [{"name": "a", "source": {"prefix": "r/"}, "sink": {"table": "t"}}]}
    with pytest.raises(SpecError, match=r"headwater:alerts.webhook: must be an https:// URL"):
        parse_stack({**base, "alerts": {"webhook": "http://hooks.example.com"}})
    with pytest.raises(SpecError, match=r"headwater:alerts.email: 'ops' is not an e-mail"):
        parse_stack({**base, "alerts": {"email": "ops"}})
    with pytest.raises(SpecError, match=r"headwater:alerts.deadletter_rate"):
        parse_stack({**base, "alerts": {"deadletter_rate": 0}})
    stack = parse_stack({**base, "alarm_email": "a@x.io", "alerts": {"email": "a@x.io"},
                         "tracing": False})
    assert stack.alert_emails == ["a@x.io"] and stack.tracing is False
