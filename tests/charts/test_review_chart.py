"""The chart's Label Studio review bridge (review.enabled): `slm review bridge` as a Deployment of its
own beside the primary, in both modes, with its Service (Label Studio's webhook), its token Secret,
NetworkPolicy and ServiceMonitor.

Rendered with the real helm through the umbrella chart, as the other chart tests do (the fixtures in
conftest.py, the helpers in support.py), and validated against the Kubernetes schemas (validation.py).
"""

from __future__ import annotations

import base64

import pytest

from tests.charts.support import RELEASE, by_kind, named, needs_k8s_schemas, render, set_args, template
from tests.charts.validation import assert_valid_and_hardened

PRIMARY, BRIDGE = f"{RELEASE}-sentiment", f"{RELEASE}-sentiment-review"
LABEL_STUDIO = "https://label-studio.example.com"
# A secured broker and a model fetched by an init container: the bridge must get both as the primary does.
KAFKA = {"bootstrap": "my-cluster-kafka-bootstrap.kafka:9093", "securityProtocol": "SASL_SSL",
         "sasl": {"mechanism": "SCRAM-SHA-512", "existingSecret": "slm-kafka-user"},
         "tls": {"existingSecret": "my-cluster-cluster-ca-cert"}}
MODEL = {"source": "initContainer", "initContainer": {
    "image": "amazon/aws-cli:2.31.0", "command": ["sh", "-c"],
    "args": ['aws s3 cp --recursive "$SLM_MODEL_URL" "$SLM_MODEL_DIR"'], "url": "s3://models/sentiment/2026-11-26/"}}


def _values(mode: str = "deployment", **sentiment) -> dict:
    review = {"enabled": True, "labelStudio": {"url": LABEL_STUDIO, "token": "ls-api-token"}}
    values = {"global.slm.kafka": {"bootstrap": "kafka.kafka:9092"}, "sentiment.mode": mode,
              "sentiment.image": {"tag": "2026.11.26"}, "sentiment.review": review}
    values.update({f"sentiment.{key}": value for key, value in sentiment.items()})
    return values


def _selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _env(container: dict) -> dict:
    return {e["name"]: e for e in container.get("env", [])}


def _bridge(docs: list[dict]) -> tuple[dict, dict]:
    deployment = named(docs, "Deployment", BRIDGE)
    return deployment, deployment["spec"]["template"]["spec"]


def _primary_pod_templates(docs: list[dict], mode: str) -> list[dict]:
    if mode == "deployment":
        return [named(docs, "Deployment", PRIMARY)["spec"]["template"]]
    cluster = named(docs, "RayService", PRIMARY)["spec"]["rayClusterConfig"]
    return [cluster["headGroupSpec"]["template"], *(group["template"] for group in cluster["workerGroupSpecs"])]


def test_no_bridge_by_default(helm_env, charts_dir):
    docs = render(helm_env, charts_dir, *set_args({"global.slm.kafka": {"bootstrap": "kafka.kafka:9092"},
                                                   "sentiment.mode": "deployment"}))
    assert not [d for d in docs if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "review"]
    assert BRIDGE not in {d["metadata"]["name"] for d in docs if d["kind"] != "KafkaTopic"}


@needs_k8s_schemas
@pytest.mark.parametrize("mode", ["deployment", "ray"])
def test_the_bridge_runs_beside_the_primary_with_its_image_model_and_kafka_settings(helm_env, charts_dir, mode):
    values = {**_values(mode, model=MODEL, metrics={"serviceMonitor": {"enabled": True}}), "global.slm.kafka": KAFKA}
    docs = render(helm_env, charts_dir, *set_args(values))
    assert_valid_and_hardened(docs)
    deployment, spec = _bridge(docs)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    (container,) = spec["containers"]
    assert container["command"] == ["slm", "review", "bridge"]
    assert container["args"] == ["--task", "sentiment", "--host", "0.0.0.0", "--port", "8080"]
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["resources"]["requests"], "the resources preset"

    env = _env(container)
    assert env["SLM_REVIEW_LABEL_STUDIO_URL"]["value"] == LABEL_STUDIO
    assert env["SLM_REVIEW_LABEL_STUDIO_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": BRIDGE, "key": "token"}
    assert env["SLM_REVIEW_WEBHOOK_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": BRIDGE, "key": "webhookSecret", "optional": True}
    assert env["SLM_REVIEW_WEBHOOK_URL"]["value"] == f"http://{BRIDGE}.slm.svc.cluster.local:8080/webhook"
    assert "SLM_REVIEW_PROJECT" not in env, "empty: the bridge's default"
    # Its own group on <task>.review, never the primary's (the ConfigMap's SLM_KAFKA_GROUP_ID).
    assert env["SLM_REVIEW_GROUP_ID"]["value"] == "slm-sentiment-review-bridge"
    assert env["OTEL_SERVICE_NAME"]["value"] == "slm-sentiment-review"
    assert env["SLM_MODEL_DIR"]["value"] == "/models/sentiment"
    secret = named(docs, "Secret", BRIDGE)
    assert base64.b64decode(secret["data"]["token"]).decode() == "ls-api-token"
    assert "webhookSecret" not in secret["data"]
    assert "checksum/review-secret" in deployment["spec"]["template"]["metadata"]["annotations"]

    # The primary's image, model delivery and Kafka settings and credentials.
    (primary_template, *_) = _primary_pod_templates(docs, mode)
    primary_spec = primary_template["spec"]
    primary = primary_spec["containers"][0]
    assert container["image"] == primary["image"] and container["image"].endswith("slm-sentiment:2026.11.26")
    assert spec["initContainers"] == primary_spec["initContainers"]
    assert _env(spec["initContainers"][0])["SLM_MODEL_URL"]["value"] == "s3://models/sentiment/2026-11-26/"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["model"] == {v["name"]: v for v in primary_spec["volumes"]}["model"]
    assert volumes["kafka-ca"]["secret"]["secretName"] == "my-cluster-cluster-ca-cert"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/models"]["name"] == "model" and mounts["/etc/slm/kafka-ca"]["readOnly"] is True
    assert container["envFrom"] == primary["envFrom"] == [{"configMapRef": {"name": PRIMARY}}]
    for name in ("SLM_KAFKA_SASL_USERNAME", "SLM_KAFKA_SASL_PASSWORD"):
        assert env[name] == _env(primary)[name]
    assert spec["securityContext"] == primary_spec["securityContext"]

    # The Service Label Studio's webhook reaches, and the scrape of /metrics through it.
    service = named(docs, "Service", BRIDGE)["spec"]
    assert service["type"] == "ClusterIP"
    assert service["publishNotReadyAddresses"] is True  # a webhook is sent once: a not-ready bridge still takes it
    assert service["ports"] == [{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}]
    bridge_pods = deployment["spec"]["template"]["metadata"]["labels"]
    assert _selects(service["selector"], bridge_pods)
    monitor = named(docs, "ServiceMonitor", BRIDGE)["spec"]
    assert monitor["endpoints"][0]["port"] == "http" and monitor["endpoints"][0]["path"] == "/metrics"
    bridge_service_labels = named(docs, "Service", BRIDGE)["metadata"]["labels"]
    assert _selects(monitor["selector"]["matchLabels"], bridge_service_labels)
    assert not _selects(named(docs, "ServiceMonitor", PRIMARY)["spec"]["selector"]["matchLabels"], bridge_service_labels)


@pytest.mark.parametrize("mode", ["deployment", "ray"])
def test_no_selector_of_the_primary_takes_the_bridges_pods(helm_env, charts_dir, mode):
    sentiment = {"autoscaling": {"enabled": True}} if mode == "deployment" else {}
    docs = render(helm_env, charts_dir, *set_args(_values(mode, **sentiment)))
    deployment, _ = _bridge(docs)
    bridge_pods = deployment["spec"]["template"]["metadata"]["labels"]
    assert bridge_pods["app.kubernetes.io/name"] == "sentiment-review"
    assert bridge_pods["app.kubernetes.io/component"] == "review"
    primary_selectors = [named(docs, "Service", PRIMARY)["spec"]["selector"],
                         named(docs, "PodDisruptionBudget", PRIMARY)["spec"]["selector"]["matchLabels"],
                         named(docs, "NetworkPolicy", PRIMARY)["spec"]["podSelector"]["matchLabels"]]
    if mode == "deployment":
        primary_selectors.append(named(docs, "Deployment", PRIMARY)["spec"]["selector"]["matchLabels"])
        (hpa,) = by_kind(docs, "HorizontalPodAutoscaler")
        assert hpa["spec"]["scaleTargetRef"]["name"] == PRIMARY
    for selector in primary_selectors:
        assert not _selects(selector, bridge_pods), selector
    for template in _primary_pod_templates(docs, mode):
        assert not _selects(deployment["spec"]["selector"]["matchLabels"], template["metadata"]["labels"])
        assert not _selects(named(docs, "Service", BRIDGE)["spec"]["selector"], template["metadata"]["labels"])
    # Its own NetworkPolicy lets Label Studio's webhook in on its port.
    policy = named(docs, "NetworkPolicy", BRIDGE)["spec"]
    assert _selects(policy["podSelector"]["matchLabels"], bridge_pods)
    assert policy["ingress"][0] == {"ports": [{"port": 8080, "protocol": "TCP"}]}  # allowExternal: from anywhere


@pytest.mark.parametrize("name", ["sentiment-" + "x" * 53, "a" * 55 + "-" + "b" * 7])
def test_a_long_name_keeps_the_review_suffix(helm_env, charts_dir, name):
    # 63 characters: cut after "-review" the bridge's name label was the primary's own.
    assert len(name) == 63
    docs = render(helm_env, charts_dir, *set_args(_values(nameOverride=name)))
    (bridge,) = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-review")]
    (primary,) = [d for d in by_kind(docs, "Deployment") if d is not bridge]
    label = bridge["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
    assert label.endswith("-review") and "--" not in label and len(label) <= 63
    assert not _selects(primary["spec"]["selector"]["matchLabels"], bridge["spec"]["template"]["metadata"]["labels"])


@needs_k8s_schemas
def test_an_existing_secret_a_webhook_url_and_a_project(helm_env, charts_dir):
    review = {"enabled": True, "containerPort": 9090, "project": "Sentiment (prod)",
              "webhookUrl": "https://review.example.com/sentiment/webhook",
              "labelStudio": {"url": "http://label-studio.tools:8080", "existingSecret": "label-studio-creds",
                              "existingSecretKey": "api-token", "webhookSecretKey": "hook"}}
    docs = render(helm_env, charts_dir, *set_args({**_values(), "sentiment.review": review}))
    assert_valid_and_hardened(docs)
    deployment, spec = _bridge(docs)
    env = _env(spec["containers"][0])
    assert env["SLM_REVIEW_LABEL_STUDIO_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "label-studio-creds", "key": "api-token"}
    assert env["SLM_REVIEW_WEBHOOK_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": "label-studio-creds", "key": "hook", "optional": True}
    assert env["SLM_REVIEW_WEBHOOK_URL"]["value"] == "https://review.example.com/sentiment/webhook"
    assert env["SLM_REVIEW_PROJECT"]["value"] == "Sentiment (prod)"
    assert env["SLM_REVIEW_LABEL_STUDIO_URL"]["value"] == "http://label-studio.tools:8080"
    assert spec["containers"][0]["args"][-1] == "9090"
    assert named(docs, "Service", BRIDGE)["spec"]["ports"][0]["port"] == 9090
    # The chart creates no Secret when one exists already.
    assert not [s for s in by_kind(docs, "Secret") if s["metadata"]["name"] == BRIDGE]
    assert "checksum/review-secret" not in deployment["spec"]["template"]["metadata"]["annotations"]


def test_a_webhook_secret_value_goes_into_the_charts_secret(helm_env, charts_dir):
    review = {"enabled": True, "labelStudio": {"url": LABEL_STUDIO, "token": "t", "webhookSecret": "s3cret"}}
    docs = render(helm_env, charts_dir, *set_args({**_values(), "sentiment.review": review}))
    data = named(docs, "Secret", BRIDGE)["data"]
    assert base64.b64decode(data["webhookSecret"]).decode() == "s3cret"
    # A new token or webhook secret rolls the bridge's pod (the Secret is read at start).
    other = render(helm_env, charts_dir, *set_args({**_values(), "sentiment.review": {
        **review, "labelStudio": {**review["labelStudio"], "webhookSecret": "other"}}}))
    checksum = "checksum/review-secret"
    assert (_bridge(docs)[0]["spec"]["template"]["metadata"]["annotations"][checksum]
            != _bridge(other)[0]["spec"]["template"]["metadata"]["annotations"][checksum])


@pytest.mark.parametrize(("url", "port"), [("https://label-studio.example.com", 443),
                                           ("http://label-studio.tools:8080/ls", 8080),
                                           ("http://label-studio.tools", 80)])
def test_without_external_egress_the_bridge_may_reach_label_studio_and_kafka(helm_env, charts_dir, url, port):
    values = {**_values(networkPolicy={"allowExternal": False, "allowExternalEgress": False,
                                       "ingressNSMatchLabels": {"kubernetes.io/metadata.name": "label-studio"}}),
              "sentiment.review": {"enabled": True, "labelStudio": {"url": url, "token": "t"}}}
    docs = render(helm_env, charts_dir, *set_args(values))
    policy = named(docs, "NetworkPolicy", BRIDGE)["spec"]
    egress_ports = {p["port"] for rule in policy["egress"] for p in rule.get("ports", [])}
    assert {53, 9092, 9093, port} <= egress_ports
    assert {} not in policy["egress"]
    (webhook,) = [rule for rule in policy["ingress"] if rule["ports"] == [{"port": 8080, "protocol": "TCP"}]]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "label-studio"}}} in webhook["from"]


@pytest.mark.parametrize(("review", "kafka", "message"), [
    ({"enabled": True, "labelStudio": {"token": "t"}}, "kafka.kafka:9092",
     "sentiment: review.enabled needs review.labelStudio.url"),
    ({"enabled": True, "labelStudio": {"url": LABEL_STUDIO}}, "kafka.kafka:9092",
     "sentiment: review.enabled needs Label Studio's API token"),
    ({"enabled": True, "labelStudio": {"url": LABEL_STUDIO, "token": "t", "existingSecret": "ls"}}, "kafka.kafka:9092",
     "sentiment: review.labelStudio.existingSecret and review.labelStudio.token are both set"),
    ({"enabled": True, "labelStudio": {"url": LABEL_STUDIO, "existingSecret": "ls", "webhookSecret": "s"}},
     "kafka.kafka:9092", "sentiment: review.labelStudio.webhookSecret goes only into the Secret the chart creates"),
    ({"enabled": True, "labelStudio": {"url": LABEL_STUDIO, "token": "t"}}, "",
     "sentiment: review.enabled needs global.slm.kafka.bootstrap"),
    # The values schema: a URL without its scheme, and an unknown key.
    ({"enabled": True, "labelStudio": {"url": "label-studio.example.com", "token": "t"}}, "kafka.kafka:9092",
     "at '/review/labelStudio/url'"),
    ({"enabled": True, "replicaCount": 2, "labelStudio": {"url": LABEL_STUDIO, "token": "t"}}, "kafka.kafka:9092",
     "additional properties 'replicaCount' not allowed"),
], ids=["no-url", "no-token", "token-and-secret", "webhook-secret-with-existing-secret", "no-kafka",
        "url-without-scheme", "replicas"])
def test_a_bridge_that_cannot_work_fails_with_a_clear_message(helm_env, charts_dir, review, kafka, message):
    values = {**_values(), "global.slm.kafka": {"bootstrap": kafka}, "sentiment.review": review}
    result = template(helm_env, charts_dir, *set_args(values))
    assert result.returncode != 0, "helm template accepted a bridge that cannot work"
    assert message in result.stderr, result.stderr


def test_the_bridges_environment_names_are_review_settings(helm_env, charts_dir):
    """A name no settings class reads would be ignored without a word (shared/review/settings.py)."""
    review_settings = pytest.importorskip("shared.review.settings")
    from shared.settings import known_setting_names

    docs = render(helm_env, charts_dir, *set_args(_values(review={
        "enabled": True, "project": "p", "labelStudio": {"url": LABEL_STUDIO, "token": "t"}})))
    _, spec = _bridge(docs)
    names = {name for name in _env(spec["containers"][0]) if name.startswith("SLM_")}
    assert {"SLM_REVIEW_LABEL_STUDIO_URL", "SLM_REVIEW_PROJECT", "SLM_REVIEW_GROUP_ID"} <= names
    assert sorted(names - known_setting_names(extra=(review_settings.ReviewSettings,))) == []
