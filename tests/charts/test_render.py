"""Rendering with the default values and with overrides, each render validated and checked hardened:
ray mode (RayService with its Serve config), deployment mode with an HPA, GPUs in both modes, the
values files of the skaffold profiles, the task chart alone, and the PodDisruptionBudget per mode.
"""

from __future__ import annotations

import re

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from tests.charts.support import RELEASE, TASKS, by_kind, named, needs_k8s_schemas, render, set_args
from tests.charts.validation import assert_valid_and_hardened, pod_specs


@needs_k8s_schemas
def test_default_values_render_ray_services(helm_env, charts_dir):
    docs = render(helm_env, charts_dir)
    assert_valid_and_hardened(docs)
    for task in TASKS:
        name = f"{RELEASE}-{task}"
        ray_service = named(docs, "RayService", name)
        serve = yaml.safe_load(ray_service["spec"]["serveConfigV2"])
        (app,) = serve["applications"]
        ServeDeploySchema.model_validate(serve)  # Ray Serve's own schema of a config file
        assert app["import_path"] == "shared.ray_replicas:build_app"
        assert app["args"] == {"task": task, "partitions": 3}
        (deployment,) = app["deployments"]
        assert deployment["name"] == f"slm-{task}"
        assert deployment["autoscaling_config"] == {
            "min_replicas": 1, "max_replicas": 3, "target_ongoing_requests": 8,
            "policy": {"policy_function": "shared.ray_autoscaling:KafkaLagPolicy",
                       "policy_kwargs": {"target_lag_per_replica": 1000, "partitions": 3}}}
        assert deployment["ray_actor_options"]["num_cpus"] == 1
        cluster = ray_service["spec"]["rayClusterConfig"]
        assert cluster["enableInTreeAutoscaling"] is True
        assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
        for _, spec in pod_specs([ray_service]):
            assert spec["containers"][0]["image"] == f"slm-{task}:0.1.0"
        annotations = cluster["headGroupSpec"]["template"]["metadata"]["annotations"]
        assert re.fullmatch(r"[0-9a-f]{64}", annotations["checksum/config"])

        service = named(docs, "Service", name)
        assert service["spec"]["ports"][0]["port"] == 3000
        assert service["spec"]["selector"]["ray.io/serve"] == "true"
        pdb = named(docs, "PodDisruptionBudget", name)["spec"]
        assert pdb["selector"]["matchLabels"]["ray.io/node-type"] == "worker"
        # A RayCluster has no scale subresource: maxUnavailable would allow 0 disruptions.
        assert "maxUnavailable" not in pdb and pdb["minAvailable"] == 0
        named(docs, "NetworkPolicy", name)
        config = named(docs, "ConfigMap", name)["data"]
        assert config["SLM_MODEL_DIR"] == f"/app/models/{task}"
        assert "SLM_KAFKA_BOOTSTRAP" not in config  # Kafka is off until global.slm.kafka.bootstrap is set
    assert not by_kind(docs, "Deployment") and not by_kind(docs, "HorizontalPodAutoscaler")


@needs_k8s_schemas
def test_deployment_mode_with_autoscaling_and_kafka(helm_env, charts_dir):
    values = {
        "global.slm.kafka": {"bootstrap": "kafka.kafka:9092", "topicPrefix": "prod."},
        "global.slm.otel.endpoint": "http://otel-collector.observability:4318",
    }
    for task in TASKS:
        values[f"{task}.mode"] = "deployment"
    values["sentiment.autoscaling"] = {"enabled": True, "minReplicas": 2, "maxReplicas": 3, "targetMemory": 80}
    values["transactions.replicaCount"] = 2
    values["entities.settings"] = {"reviewThreshold": 0.6, "reviewIncludeInput": False}
    docs = render(helm_env, charts_dir, *set_args(values))
    assert_valid_and_hardened(docs)
    assert not by_kind(docs, "RayService")

    sentiment = named(docs, "Deployment", f"{RELEASE}-sentiment")
    assert "replicas" not in sentiment["spec"], "the HPA owns replicas when autoscaling is on"
    hpa = named(docs, "HorizontalPodAutoscaler", f"{RELEASE}-sentiment")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 3)
    assert {m["resource"]["name"] for m in hpa["spec"]["metrics"]} == {"cpu", "memory"}
    assert named(docs, "Deployment", f"{RELEASE}-transactions")["spec"]["replicas"] == 2
    assert len(by_kind(docs, "HorizontalPodAutoscaler")) == 1

    container = sentiment["spec"]["template"]["spec"]["containers"][0]
    # slm serve checks the model folder against its manifest, then execs bentoml serve.
    assert container["command"] == ["slm", "serve"]
    assert container["args"] == ["sentiment", "--host", "0.0.0.0", "--port", "3000"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["envFrom"][0]["configMapRef"]["name"] == f"{RELEASE}-sentiment"
    helpdesk = named(docs, "Deployment", f"{RELEASE}-helpdesk")["spec"]["template"]["spec"]["containers"][0]
    assert helpdesk["args"][0] == "helpdesk"

    config = named(docs, "ConfigMap", f"{RELEASE}-sentiment")["data"]
    assert config["SLM_KAFKA_BOOTSTRAP"] == "kafka.kafka:9092"
    assert config["SLM_KAFKA_GROUP_ID"] == "slm-sentiment"
    assert config["SLM_KAFKA_TOPIC_PREFIX"] == "prod."
    assert config["SLM_KAFKA_CREATE_TOPICS"] == "true"
    assert config["OTEL_SERVICE_NAME"] == "slm-sentiment"
    assert config["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability:4318"
    assert named(docs, "ConfigMap", f"{RELEASE}-entities")["data"]["SLM_REVIEW_THRESHOLD"] == "0.6"
    # Review records carry the input unless a task turns it off (privacy).
    assert config["SLM_REVIEW_INCLUDE_INPUT"] == "true"
    assert named(docs, "ConfigMap", f"{RELEASE}-entities")["data"]["SLM_REVIEW_INCLUDE_INPUT"] == "false"


@needs_k8s_schemas
def test_gpu_resources_in_both_modes(helm_env, charts_dir):
    gpu = {"limits": {"nvidia.com/gpu": 1, "memory": "8Gi"}, "requests": {"cpu": "2", "memory": "4Gi"}}
    values = {
        "sentiment.ray": {"serve": {"numGpus": 1}, "worker": {"resources": gpu}},
        "sentiment.nodeSelector": {"nvidia.com/gpu.present": "true"},
        "sentiment.tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "transactions.mode": "deployment",
        "transactions.resources": gpu,
    }
    docs = render(helm_env, charts_dir, *set_args(values))
    assert_valid_and_hardened(docs)
    ray_service = named(docs, "RayService", f"{RELEASE}-sentiment")
    worker = ray_service["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"]
    assert worker["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert worker["tolerations"][0]["key"] == "nvidia.com/gpu"
    serve = yaml.safe_load(ray_service["spec"]["serveConfigV2"])
    assert serve["applications"][0]["deployments"][0]["ray_actor_options"]["num_gpus"] == 1
    deployment = named(docs, "Deployment", f"{RELEASE}-transactions")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1


@needs_k8s_schemas
@pytest.mark.parametrize("values_file", ["values-dev.yaml", "values-production.yaml", "values-production-keda.yaml"])
def test_skaffold_profile_values_render(helm_env, charts_dir, values_file):
    docs = render(helm_env, charts_dir, "--values", str(charts_dir / "slm-services" / values_file))
    assert_valid_and_hardened(docs)
    if values_file == "values-dev.yaml":
        for task in TASKS:
            deployment = named(docs, "Deployment", f"{RELEASE}-{task}")
            assert deployment["spec"]["replicas"] == 1
            assert deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
        assert not by_kind(docs, "HorizontalPodAutoscaler") and not by_kind(docs, "RayService")
    elif values_file == "values-production.yaml":
        assert len(by_kind(docs, "RayService")) == 4 and len(by_kind(docs, "KafkaTopic")) == 20
        for pdb in by_kind(docs, "PodDisruptionBudget"):
            assert pdb["spec"]["minAvailable"] == 1
        for task in TASKS:
            ray_service = named(docs, "RayService", f"{RELEASE}-{task}")
            worker = ray_service["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"]
            spread = worker["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"]
            assert spread["app.kubernetes.io/name"] == task and spread["app.kubernetes.io/instance"] == RELEASE
    else:
        assert len(by_kind(docs, "ScaledObject")) == 4 and not by_kind(docs, "RayService")


@needs_k8s_schemas
def test_task_chart_renders_alone(helm_env, charts_dir):
    docs = render(
        helm_env, charts_dir, "--set", "task=helpdesk", "--set", "nameOverride=helpdesk", chart="slm-task"
    )
    assert_valid_and_hardened(docs)
    ray_service = named(docs, "RayService", f"{RELEASE}-helpdesk")
    serve = yaml.safe_load(ray_service["spec"]["serveConfigV2"])
    assert serve["applications"][0]["args"]["task"] == "helpdesk"
    assert serve["applications"][0]["deployments"][0]["name"] == "slm-helpdesk"


def test_deployment_mode_pdb_keeps_max_unavailable(helm_env, charts_dir):
    docs = render(helm_env, charts_dir, *set_args({"sentiment.mode": "deployment"}))
    assert named(docs, "PodDisruptionBudget", f"{RELEASE}-sentiment")["spec"]["maxUnavailable"] == 1
