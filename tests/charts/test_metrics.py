"""The task chart's monitoring objects: the PrometheusRule and the Grafana dashboard ConfigMap are
opt-in, valid and scoped to their task, and every ``slm_*`` series they query is one the services'
instruments export.
"""

from __future__ import annotations

import json
import re

from shared.settings import REPO_ROOT
from tests.charts.support import CHARTS, RELEASE, by_kind, named, needs_k8s_schemas, render, set_args
from tests.charts.validation import assert_valid_and_hardened


@needs_k8s_schemas
def test_prometheus_rule_and_grafana_dashboard_are_opt_in_and_valid(helm_env, charts_dir):
    assert not by_kind(render(helm_env, charts_dir, chart="slm-task"), "PrometheusRule")
    values = {"metrics": {"prometheusRule": {"enabled": True, "labels": {"release": "prometheus"}, "lag": 500},
                          "grafanaDashboard": {"enabled": True}}}
    docs = render(helm_env, charts_dir, *set_args(values), "--namespace", "nlp", chart="slm-task")
    assert_valid_and_hardened(docs)  # the PrometheusRule against its CRD

    rule = named(docs, "PrometheusRule", f"{RELEASE}-slm-task")
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    alerts = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    assert set(alerts) == {"SlmDeadLettersHigh", "SlmConsumerLagHigh", "SlmReviewRatioHigh", "SlmDriftHigh",
                           "SlmBrokerSilent"}
    assert alerts["SlmConsumerLagHigh"]["expr"].endswith("> 500")
    for alert in alerts.values():
        assert 'task="sentiment",namespace="nlp"' in alert["expr"], alert["alert"]

    dashboard_map = named(docs, "ConfigMap", f"{RELEASE}-slm-task-dashboard")
    assert dashboard_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(dashboard_map["data"]["slm-sentiment.json"])
    assert dashboard["uid"] == "slm-sentiment"
    task_variable = next(v for v in dashboard["templating"]["list"] if v["name"] == "task")
    assert task_variable["current"]["value"] == "sentiment"
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert exprs and all('task="$task"' in expr and 'role!="shadow"' in expr for expr in exprs)


def exported_metric_names() -> set[str]:
    """The Prometheus names of every series the task instruments produce, each recorded once."""
    from types import SimpleNamespace

    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from shared.cache import ResultCache
    from shared.drift import DriftMonitor, DriftReference
    from shared.telemetry.instruments import TaskInstruments
    from tests.shared.test_ray_metrics import LoopHealth

    registry = CollectorRegistry()
    meter = MeterProvider(metric_readers=[PrometheusMetricReader(scope_info_enabled=False, registry=registry)]
                          ).get_meter("test")
    instruments = TaskInstruments("t", "m", meter=meter)
    instruments.record_batch(polled=1, results=1, review=1, dlq_types={"schema": 1}, latency_ms=1.0, path="kafka")
    instruments.record_latencies([1.0], path="kafka")
    instruments.predictions.observe([], [SimpleNamespace(label="a", score=0.5)])
    loop = LoopHealth(1.0, {("t.requests", 0): 1})  # kept alive until the collection below
    instruments.observe_loop(loop)
    ResultCache(1, "t", "m", meter=meter).get_or_compute(["k", "k"], lambda keys: keys)
    drift = DriftMonitor("t", "m", DriftReference.read(REPO_ROOT / "models/sentiment"), window=1, meter=meter)
    drift.observe([SimpleNamespace(request=SimpleNamespace(text="Gold rallies"))],
                  [SimpleNamespace(label="bullish", score=0.9)])
    names = set()
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        names |= {family.name} | {sample.name for sample in family.samples}
    return names


def test_alerts_and_dashboard_name_only_metrics_the_services_export():
    """Every ``slm_*`` series the rule and the dashboard query is one the instruments produce."""
    exported = exported_metric_names()
    queried = set()
    for path in (CHARTS / "slm-task/files/grafana-dashboard.json", CHARTS / "slm-task/templates/prometheusrule.yaml"):
        queried |= set(re.findall(r"\bslm_[a-z_]+", path.read_text()))
    assert queried, "no slm_* series queried"
    assert queried <= exported, f"not exported: {sorted(queried - exported)}"
