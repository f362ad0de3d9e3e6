"""What the chart hands a task to reach Kafka, and the secrets it mounts: SASL and TLS from existing
Secrets (with a KEDA ScaledObject), a client certificate for mutual TLS, API keys in both modes,
Strimzi KafkaTopics (with ServiceMonitors), static group membership and the delivery settings, and
every ``SLM_*`` name rendered being a settings field some service reads.
"""

from __future__ import annotations

import json

from tests.charts.support import RELEASE, TASKS, by_kind, named, needs_k8s_schemas, render, set_args, template
from tests.charts.validation import assert_valid_and_hardened, pod_specs


@needs_k8s_schemas
def test_keda_scaled_object_with_sasl_and_tls_from_existing_secrets(helm_env, charts_dir):
    values = {
        "global.slm.kafka": {
            "bootstrap": "my-cluster-kafka-bootstrap.kafka:9093",
            "securityProtocol": "SASL_SSL",
            "sasl": {"mechanism": "SCRAM-SHA-512", "existingSecret": "slm-kafka-user"},
            "tls": {"existingSecret": "my-cluster-cluster-ca-cert"},
        },
        "sentiment.mode": "deployment",
        "sentiment.keda": {"enabled": True, "minReplicaCount": 1, "maxReplicaCount": 3},
        "transactions.enabled": False,
        "entities.enabled": False,
        "helpdesk.enabled": False,
    }
    docs = render(helm_env, charts_dir, *set_args(values))
    assert_valid_and_hardened(docs)
    name = f"{RELEASE}-sentiment"
    assert "replicas" not in named(docs, "Deployment", name)["spec"], "KEDA owns replicas"
    assert not by_kind(docs, "HorizontalPodAutoscaler"), "KEDA creates its own HPA"

    scaled = named(docs, "ScaledObject", name)
    assert scaled["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["consumerGroup"] == "slm-sentiment"
    assert trigger["metadata"]["topic"] == "sentiment.requests"
    assert trigger["metadata"]["sasl"] == "scram_sha512" and trigger["metadata"]["tls"] == "enable"
    assert trigger["authenticationRef"]["name"] == name
    auth = named(docs, "TriggerAuthentication", name)
    refs = {ref["parameter"]: (ref["name"], ref["key"]) for ref in auth["spec"]["secretTargetRef"]}
    assert refs == {
        "username": ("slm-kafka-user", "username"),
        "password": ("slm-kafka-user", "password"),
        "ca": ("my-cluster-cluster-ca-cert", "ca.crt"),
    }

    container = named(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["SLM_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "slm-kafka-user", "key": "password"}
    assert env["SLM_KAFKA_SASL_USERNAME"]["valueFrom"]["secretKeyRef"] == {"name": "slm-kafka-user", "key": "username"}
    config = named(docs, "ConfigMap", name)["data"]
    assert config["SLM_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert config["SLM_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert config["SLM_KAFKA_SSL_CAFILE"] == "/etc/slm/kafka-ca/ca.crt"
    assert not any("PASSWORD" in key for key in config)
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/etc/slm/kafka-ca"]["readOnly"] is True


def test_a_client_certificate_secret_is_mounted_for_mutual_tls(helm_env, charts_dir):
    values = {"global.slm.kafka": {"bootstrap": "my-cluster-kafka-bootstrap.kafka:9093", "securityProtocol": "SSL",
                                   "tls": {"existingSecret": "my-cluster-cluster-ca-cert",
                                           "clientCertSecret": "slm-kafka-user"}},
              "sentiment.mode": "deployment"}
    docs = render(helm_env, charts_dir, *set_args(values))
    name = f"{RELEASE}-sentiment"
    config = named(docs, "ConfigMap", name)["data"]
    assert (config["SLM_KAFKA_SSL_CERTFILE"], config["SLM_KAFKA_SSL_KEYFILE"]) == (
        "/etc/slm/kafka-client/tls.crt", "/etc/slm/kafka-client/tls.key")
    spec = named(docs, "Deployment", name)["spec"]["template"]["spec"]
    volume = {v["name"]: v for v in spec["volumes"]}["kafka-client-cert"]["secret"]
    # Strimzi's KafkaUser Secret names them user.crt and user.key.
    assert volume["secretName"] == "slm-kafka-user"
    assert volume["items"] == [{"key": "user.crt", "path": "tls.crt"}, {"key": "user.key", "path": "tls.key"}]
    mounts = {m["mountPath"]: m for m in spec["containers"][0]["volumeMounts"]}
    assert mounts["/etc/slm/kafka-client"]["readOnly"] is True
    plaintext = template(helm_env, charts_dir, *set_args(
        {"global.slm.kafka": {"bootstrap": "kafka:9092", "tls": {"clientCertSecret": "slm-kafka-user"}}}))
    assert plaintext.returncode != 0
    assert "global.slm.kafka.tls.clientCertSecret: a client certificate needs securityProtocol SSL" in plaintext.stderr


def test_api_keys_come_from_an_existing_secret_mounted_as_a_folder_in_both_modes(helm_env, charts_dir):
    values = {"global.slm.apiKeys": {"existingSecret": "slm-api-keys"}, "transactions.mode": "deployment"}
    docs = render(helm_env, charts_dir, *set_args(values))
    for task in ("transactions", "sentiment"):
        assert named(docs, "ConfigMap", f"{RELEASE}-{task}")["data"]["SLM_API_KEYS_FILE"] == "/etc/slm/api-keys/api-keys"
    deployment = named(docs, "Deployment", f"{RELEASE}-transactions")["spec"]["template"]["spec"]
    ray = named(docs, "RayService", f"{RELEASE}-sentiment")["spec"]["rayClusterConfig"]
    for spec in (deployment, ray["headGroupSpec"]["template"]["spec"], ray["workerGroupSpecs"][0]["template"]["spec"]):
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes["api-keys"]["secret"] == {"secretName": "slm-api-keys",
                                                 "items": [{"key": "api-keys", "path": "api-keys"}]}
        mounts = [m for c in spec["containers"] for m in c.get("volumeMounts", []) if m["name"] == "api-keys"]
        # A folder, never a subPath: the kubelet swaps a changed Secret in only then.
        assert mounts and all(m["mountPath"] == "/etc/slm/api-keys" and "subPath" not in m for m in mounts)
    without = render(helm_env, charts_dir)
    assert "SLM_API_KEYS_FILE" not in named(without, "ConfigMap", f"{RELEASE}-sentiment")["data"]
    assert "api-keys" not in json.dumps(without)


@needs_k8s_schemas
def test_strimzi_topics_and_service_monitors(helm_env, charts_dir):
    values = {
        "global.slm.kafka": {"bootstrap": "my-cluster-kafka-bootstrap.kafka:9092", "replicationFactor": 3},
        "global.slm.strimzi": {"enabled": True, "clusterName": "my-cluster"},
        "sentiment.kafka": {"partitions": 6, "topicConfig": {"dlq": {"retention.ms": 1209600000}}},
        "sentiment.metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
        "transactions.mode": "deployment",
        "transactions.metrics": {"serviceMonitor": {"enabled": True}},
    }
    docs = render(helm_env, charts_dir, *set_args(values))
    assert_valid_and_hardened(docs)
    topics = by_kind(docs, "KafkaTopic")
    assert sorted(t["spec"]["topicName"] for t in topics) == sorted(
        f"{task}.{kind}" for task in TASKS for kind in ("requests", "results", "review", "dlq", "feedback")
    )
    for topic in topics:
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "my-cluster"
        assert topic["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert topic["spec"]["replicas"] == 3
    dlq = named(docs, "KafkaTopic", f"{RELEASE}-sentiment-dlq")
    assert dlq["spec"]["partitions"] == 6 and dlq["spec"]["config"] == {"retention.ms": 1209600000}
    config = named(docs, "ConfigMap", f"{RELEASE}-sentiment")["data"]
    assert config["SLM_KAFKA_CREATE_TOPICS"] == "false", "topics belong to Strimzi"

    ray_monitor = named(docs, "ServiceMonitor", f"{RELEASE}-sentiment")
    assert ray_monitor["metadata"]["labels"]["release"] == "prometheus"
    assert ray_monitor["spec"]["endpoints"][0]["port"] == "metrics"
    metrics_service = named(docs, "Service", f"{RELEASE}-sentiment-ray-metrics")
    assert metrics_service["spec"]["clusterIP"] == "None"
    deployment_monitor = named(docs, "ServiceMonitor", f"{RELEASE}-transactions")
    assert deployment_monitor["spec"]["endpoints"][0] == {
        "port": "http", "path": "/metrics", "interval": "30s", "honorLabels": False,
    }


def test_consumers_are_static_members_named_after_their_pod(helm_env, charts_dir):
    values = {"global.slm.kafka": {"bootstrap": "kafka.kafka:9092"}, "sentiment.mode": "deployment",
              "sentiment.kafka": {"sessionTimeoutMs": 20000, "heartbeatIntervalMs": 2000, "unreadyAfterS": 0}}
    docs = render(helm_env, charts_dir, *set_args(values))
    container = named(docs, "Deployment", f"{RELEASE}-sentiment")["spec"]["template"]["spec"]["containers"][0]
    # The pod name survives a container restart: a consumer killed with -9 rejoins as the same member.
    (instance,) = [e for e in container["env"] if e["name"] == "SLM_KAFKA_GROUP_INSTANCE_ID"]
    assert instance["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    config = named(docs, "ConfigMap", f"{RELEASE}-sentiment")["data"]
    assert (config["SLM_KAFKA_SESSION_TIMEOUT_MS"], config["SLM_KAFKA_HEARTBEAT_INTERVAL_MS"]) == ("20000", "2000")
    assert config["SLM_KAFKA_UNREADY_AFTER_S"] == "0"
    assert config["SLM_KAFKA_DELIVERY"] == "at_least_once"
    exactly_once = render(helm_env, charts_dir, *set_args({**values, "sentiment.kafka.delivery": "exactly_once"}))
    config = named(exactly_once, "ConfigMap", f"{RELEASE}-sentiment")["data"]
    assert (config["SLM_KAFKA_DELIVERY"], config["SLM_KAFKA_TRANSACTION_TIMEOUT_MS"]) == ("exactly_once", "60000")
    no_kafka = render(helm_env, charts_dir, "--set", "sentiment.mode=deployment")
    container = named(no_kafka, "Deployment", f"{RELEASE}-sentiment")["spec"]["template"]["spec"]["containers"][0]
    assert "SLM_KAFKA_GROUP_INSTANCE_ID" not in str(container.get("env", []))


def test_every_slm_name_the_chart_renders_is_a_settings_field(helm_env, charts_dir):
    """A value the chart sets under a name no settings class reads would be ignored without a word."""
    from shared.settings import known_setting_names

    everything = {
        "global.slm.kafka": {"bootstrap": "kafka.kafka:9093", "securityProtocol": "SASL_SSL",
                             "sasl": {"mechanism": "SCRAM-SHA-512", "existingSecret": "slm-kafka-user"},
                             "tls": {"existingSecret": "my-cluster-cluster-ca-cert"}},
        "sentiment.mode": "deployment",
        "entities.settings": {"reviewThreshold": 0.6},
        "transactions.model": {"source": "initContainer", "initContainer": {
            "image": "amazon/aws-cli:2.31.0", "url": "s3://models/transactions/2026-11-26/"}},
    }
    docs = render(helm_env, charts_dir) + render(helm_env, charts_dir, *set_args(everything))
    rendered = {key for doc in by_kind(docs, "ConfigMap") for key in doc.get("data", {})}
    for _, spec in pod_specs(docs):
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            rendered |= {env["name"] for env in container.get("env", [])}
    slm_names = {name for name in rendered if name.startswith("SLM_")}
    # The renders above reach every kind of SLM_* entry: plain, secret, pod field, init container.
    assert {"SLM_MODEL_DIR", "SLM_REVIEW_THRESHOLD", "SLM_KAFKA_SASL_PASSWORD", "SLM_KAFKA_SSL_CAFILE",
            "SLM_KAFKA_GROUP_INSTANCE_ID", "SLM_MODEL_URL"} <= slm_names
    assert sorted(slm_names - known_setting_names()) == []
