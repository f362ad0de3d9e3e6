"""The chart's shadow: a second model version's Deployment beside the primary (shadow.enabled).

Rendered with the real helm through the umbrella chart, as the other chart tests do (the fixtures
in conftest.py, the helpers in support.py), and validated against the Kubernetes schemas (validation.py).
"""

from __future__ import annotations

import pytest

from shared.kafka.topics import TaskTopics
from shared.settings import known_setting_names
from tests.charts.support import RELEASE, by_kind, named, needs_k8s_schemas, render, set_args, template
from tests.charts.validation import assert_valid_and_hardened

KAFKA = {"bootstrap": "kafka.kafka:9092", "topicPrefix": "prod."}
PRIMARY, SHADOW = f"{RELEASE}-sentiment", f"{RELEASE}-sentiment-shadow"


def _values(**sentiment) -> dict:
    values = {"global.slm.kafka": KAFKA, "sentiment.mode": "deployment",
              "sentiment.image": {"tag": "2026.11.26"}}
    values.update({f"sentiment.{key}": value for key, value in sentiment.items()})
    return values


def _selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _env(container: dict) -> dict:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def test_no_shadow_by_default(helm_env, charts_dir):
    docs = render(helm_env, charts_dir, *set_args(_values(autoscaling={"enabled": True})))
    assert [d["metadata"]["name"] for d in by_kind(docs, "Deployment") if "shadow" in d["metadata"]["name"]] == []
    assert not [d for d in docs if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "shadow"]


@needs_k8s_schemas
def test_the_shadow_deployment_reads_in_its_own_group_and_is_outside_the_service_and_the_autoscaler(
        helm_env, charts_dir):
    values = _values(autoscaling={"enabled": True, "minReplicas": 2, "maxReplicas": 3},
                     shadow={"enabled": True, "model": {"image": {"tag": "2026.12.01"}}})
    docs = render(helm_env, charts_dir, *set_args(values))
    assert_valid_and_hardened(docs)
    primary, shadow = named(docs, "Deployment", PRIMARY), named(docs, "Deployment", SHADOW)
    container = shadow["spec"]["template"]["spec"]["containers"][0]
    env = _env(container)
    assert env["SLM_KAFKA_SHADOW"] == "true"
    assert {name for name in env if name.startswith("SLM_")} <= known_setting_names()
    # The group the service would take by itself (a shadow refuses the primary's), set here because
    # the task's ConfigMap, which the shadow reads too, names the primary's.
    shadow_topics = TaskTopics("sentiment", KAFKA["topicPrefix"], shadow=True)
    assert env["SLM_KAFKA_GROUP_ID"] == shadow_topics.consumer_group(None) == "slm-sentiment-shadow"
    assert named(docs, "ConfigMap", PRIMARY)["data"]["SLM_KAFKA_GROUP_ID"] == "slm-sentiment"
    assert container["envFrom"][0]["configMapRef"]["name"] == PRIMARY
    assert env["SLM_MODEL_DIR"] == "/app/models/sentiment"
    # The second version is the shadow's image; the primary keeps its own.
    assert container["image"].endswith("slm-sentiment:2026.12.01")
    assert primary["spec"]["template"]["spec"]["containers"][0]["image"].endswith("slm-sentiment:2026.11.26")
    assert shadow["spec"]["replicas"] == 1

    shadow_pods = shadow["spec"]["template"]["metadata"]["labels"]
    primary_pods = primary["spec"]["template"]["metadata"]["labels"]
    service = named(docs, "Service", PRIMARY)["spec"]["selector"]
    assert _selects(service, primary_pods) and not _selects(service, shadow_pods)
    assert not _selects(primary["spec"]["selector"]["matchLabels"], shadow_pods)
    assert not _selects(shadow["spec"]["selector"]["matchLabels"], primary_pods)
    assert _selects(shadow["spec"]["selector"]["matchLabels"], shadow_pods)
    pdb = named(docs, "PodDisruptionBudget", PRIMARY)["spec"]["selector"]["matchLabels"]
    assert not _selects(pdb, shadow_pods)
    (hpa,) = by_kind(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == PRIMARY
    assert _selects(named(docs, "NetworkPolicy", SHADOW)["spec"]["podSelector"]["matchLabels"], shadow_pods)


def _ray_pod_templates(ray_service: dict) -> list[dict]:
    cluster = ray_service["spec"]["rayClusterConfig"]
    return [cluster["headGroupSpec"]["template"], *(group["template"] for group in cluster["workerGroupSpecs"])]


@needs_k8s_schemas
def test_in_ray_mode_the_shadow_is_the_same_deployment_beside_the_ray_service(helm_env, charts_dir):
    values = {**_values(shadow={"enabled": True, "model": {"image": {"tag": "2026.12.01"}}},
                        networkPolicy={"enabled": True}, metrics={"serviceMonitor": {"enabled": True}}),
              "sentiment.mode": "ray"}
    docs = render(helm_env, charts_dir, *set_args(values))
    assert_valid_and_hardened(docs)
    (ray_service,) = [d for d in by_kind(docs, "RayService") if d["metadata"]["name"] == PRIMARY]
    # The primary is the RayService: sentiment's only Deployment is the shadow's.
    (shadow,) = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].startswith(PRIMARY)]
    assert shadow["metadata"]["name"] == SHADOW
    container = shadow["spec"]["template"]["spec"]["containers"][0]
    env = _env(container)
    assert env["SLM_KAFKA_SHADOW"] == "true" and env["SLM_KAFKA_GROUP_ID"] == "slm-sentiment-shadow"
    assert container["image"].endswith("slm-sentiment:2026.12.01")
    assert container["args"][0] == "sentiment" and "--replicas" not in container["args"]  # one process per pod
    shadow_pods = shadow["spec"]["template"]["metadata"]["labels"]
    for template in _ray_pod_templates(ray_service):
        ray_pods = template["metadata"]["labels"]
        assert not _selects(shadow["spec"]["selector"]["matchLabels"], ray_pods)
        assert not _selects(named(docs, "NetworkPolicy", PRIMARY)["spec"]["podSelector"]["matchLabels"], shadow_pods)
        # The Serve application's image stays the primary's.
        assert all(c["image"].endswith("slm-sentiment:2026.11.26") for c in template["spec"]["containers"])
    assert _selects(named(docs, "NetworkPolicy", SHADOW)["spec"]["podSelector"]["matchLabels"], shadow_pods)
    assert _selects(named(docs, "Service", f"{SHADOW}-metrics")["spec"]["selector"], shadow_pods)
    assert SHADOW in {d["metadata"]["name"] for d in by_kind(docs, "ServiceMonitor")}


@needs_k8s_schemas
def test_the_shadow_with_keda_strimzi_and_a_model_from_an_init_container(helm_env, charts_dir):
    values = _values(keda={"enabled": True},
                     model={"source": "initContainer", "initContainer": {
                         "image": "amazon/aws-cli:2.31.0", "command": ["sh", "-c"],
                         "args": ['aws s3 cp --recursive "$SLM_MODEL_URL" "$SLM_MODEL_DIR"'],
                         "url": "s3://models/sentiment/2026-11-26/"}},
                     shadow={"enabled": True, "model": {"url": "s3://models/sentiment/2026-12-01/"}})
    values["global.slm.strimzi"] = {"enabled": True, "clusterName": "my-cluster"}
    docs = render(helm_env, charts_dir, *set_args(values))
    assert_valid_and_hardened(docs)
    (scaled,) = by_kind(docs, "ScaledObject")
    assert scaled["spec"]["scaleTargetRef"]["name"] == PRIMARY

    def fetched(name: str) -> str:
        (init,) = named(docs, "Deployment", name)["spec"]["template"]["spec"]["initContainers"]
        return _env(init)["SLM_MODEL_URL"]

    assert fetched(SHADOW) == "s3://models/sentiment/2026-12-01/"
    assert fetched(PRIMARY) == "s3://models/sentiment/2026-11-26/"
    # With Strimzi the services create no topics: the shadow's results topic is a KafkaTopic too.
    topics = {t["spec"]["topicName"] for t in by_kind(docs, "KafkaTopic")}
    assert TaskTopics("sentiment", "prod.", shadow=True).results in topics
    assert TaskTopics("sentiment", "prod.").results in topics


def test_promotion_is_a_values_change(helm_env, charts_dir):
    promoted = _values(image={"tag": "2026.12.01"}, shadow={"enabled": False, "model": {"image": {"tag": "2026.12.01"}}})
    docs = render(helm_env, charts_dir, *set_args(promoted))
    (deployment,) = by_kind(docs, "Deployment")
    assert deployment["metadata"]["name"] == PRIMARY
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].endswith("slm-sentiment:2026.12.01")


@pytest.mark.parametrize(("values", "message"), [
    ({**_values(), "global.slm.kafka": {"bootstrap": ""}, "sentiment.shadow": {"enabled": True, "model": {"dir": "/m"}}},
     "sentiment: shadow.enabled needs global.slm.kafka.bootstrap"),
    ({**_values(), "sentiment.shadow": {"enabled": True}}, "sentiment: shadow.model names no second model version"),
    # Values another model.source never reads: the shadow would run the primary's model unnoticed.
    ({**_values(), "sentiment.shadow": {"enabled": True, "model": {"pvcSubPath": "sentiment-v2"}}},
     "sentiment: shadow.model.pvcSubPath applies only when model.source=pvc (it is image)"),
    ({**_values(model={"source": "pvc", "pvc": {"claimName": "models"}}),
      "sentiment.shadow": {"enabled": True, "model": {"url": "s3://models/sentiment/v2/"}}},
     "sentiment: shadow.model.url applies only when model.source=initContainer (it is pvc)"),
])
def test_a_shadow_that_cannot_work_fails_with_a_clear_message(helm_env, charts_dir, values, message):
    result = template(helm_env, charts_dir, *set_args(values))
    assert result.returncode != 0, "helm template accepted a shadow that cannot work"
    assert message in result.stderr


def test_the_shadow_reads_its_claim_sub_path_when_the_model_is_on_a_claim(helm_env, charts_dir):
    values = _values(model={"source": "pvc", "pvc": {"claimName": "models"}},
                     shadow={"enabled": True, "model": {"pvcSubPath": "sentiment-v2"}})
    docs = render(helm_env, charts_dir, *set_args(values))
    shadow = named(docs, "Deployment", SHADOW)["spec"]["template"]["spec"]["containers"][0]
    assert _env(shadow)["SLM_MODEL_DIR"] == "/models/sentiment-v2"
    assert named(docs, "ConfigMap", PRIMARY)["data"]["SLM_MODEL_DIR"] == "/models/sentiment"


@pytest.mark.parametrize("name", ["sentiment-" + "x" * 53, "a" * 55 + "-" + "b" * 7])
def test_a_long_name_keeps_the_shadow_suffix_and_the_shadow_out_of_the_primarys_selectors(helm_env, charts_dir, name):
    # 63 characters, the most a name label holds: cut after "-shadow" it was the primary's own name.
    assert len(name) == 63
    docs = render(helm_env, charts_dir, *set_args(_values(
        nameOverride=name, shadow={"enabled": True, "model": {"image": {"tag": "2026.12.01"}}})))
    (primary,) = [d for d in by_kind(docs, "Deployment") if not d["metadata"]["name"].endswith("-shadow")]
    (shadow,) = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-shadow")]
    primary_pods = primary["spec"]["template"]["metadata"]["labels"]
    shadow_pods = shadow["spec"]["template"]["metadata"]["labels"]
    shadow_name = shadow_pods["app.kubernetes.io/name"]
    assert primary_pods["app.kubernetes.io/name"] == name
    assert shadow_name.endswith("-shadow") and "--" not in shadow_name and len(shadow_name) <= 63
    assert shadow["spec"]["template"]["spec"]["containers"][0]["name"] == shadow_name
    for selector in (named(docs, "Service", primary["metadata"]["name"])["spec"]["selector"],
                     primary["spec"]["selector"]["matchLabels"]):
        assert not _selects(selector, shadow_pods)
    assert not _selects(shadow["spec"]["selector"]["matchLabels"], primary_pods)


def test_the_shadows_network_policy_keeps_the_extra_ingress_and_egress_rules(helm_env, charts_dir):
    ingress = {"from": [{"namespaceSelector": {"matchLabels": {"team": "observability"}}}], "ports": [{"port": 3000}]}
    egress = {"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "ports": [{"port": 443, "protocol": "TCP"}]}
    values = _values(networkPolicy={"enabled": True, "extraIngress": [ingress], "extraEgress": [egress]},
                     shadow={"enabled": True, "model": {"image": {"tag": "2026.12.01"}}})
    docs = render(helm_env, charts_dir, *set_args(values))
    for name in (PRIMARY, SHADOW):
        policy = named(docs, "NetworkPolicy", name)["spec"]
        assert ingress in policy["ingress"], name
        assert egress in policy["egress"], name


@needs_k8s_schemas
def test_the_shadow_is_scraped_through_its_own_service_and_kept_out_of_the_alerts(helm_env, charts_dir):
    values = _values(shadow={"enabled": True, "model": {"image": {"tag": "2026.12.01"}}},
                     metrics={"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}})
    docs = render(helm_env, charts_dir, *set_args(values))
    assert_valid_and_hardened(docs)
    shadow_pods = named(docs, "Deployment", SHADOW)["spec"]["template"]["metadata"]["labels"]
    primary_pods = named(docs, "Deployment", PRIMARY)["spec"]["template"]["metadata"]["labels"]
    scrape = named(docs, "Service", f"{SHADOW}-metrics")
    assert scrape["spec"]["clusterIP"] == "None"
    assert _selects(scrape["spec"]["selector"], shadow_pods) and not _selects(scrape["spec"]["selector"], primary_pods)
    monitors = {d["metadata"]["name"]: d for d in by_kind(docs, "ServiceMonitor")}
    assert set(monitors) == {PRIMARY, SHADOW}
    shadow_selector = monitors[SHADOW]["spec"]["selector"]["matchLabels"]
    assert _selects(shadow_selector, scrape["metadata"]["labels"])
    assert not _selects(monitors[PRIMARY]["spec"]["selector"]["matchLabels"], scrape["metadata"]["labels"])
    # The shadow's series say role="shadow" (shared/telemetry/instruments.py): the alerts leave them out.
    rules = [r for group in named(docs, "PrometheusRule", PRIMARY)["spec"]["groups"] for r in group["rules"]]
    assert rules and all('role!="shadow"' in rule["expr"] for rule in rules)
