"""The Helm charts, skaffold.yaml and the image descriptions, checked with the real tools.

helm is the binary `make setup` builds from the Go module proxy (charts/charts.mk). Every object
`helm template` renders is validated against the Kubernetes schemas bundled by kubernetes-validate,
and every custom resource against the openAPIV3Schema of its CRD in ../shared/k8s-schemas.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from shared.settings import REPO_ROOT
from tests.support import helm as support_helm

# This checkout's own path: a rendered manifest must not name the machine it was rendered on.
MACHINE_PATH = str(REPO_ROOT)

CHARTS = support_helm.CHARTS
K8S_SCHEMAS = REPO_ROOT.parent / "shared" / "k8s-schemas"
KUBERNETES_VERSION = "1.33.0"
TASKS = ("sentiment", "transactions", "entities", "helpdesk")
RELEASE = "slm"
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml parses the 1 MB CRDs in 0.2 s

needs_k8s_schemas = pytest.mark.skipif(
    not K8S_SCHEMAS.is_dir(), reason=f"{K8S_SCHEMAS} is absent: it holds the CRD and skaffold schemas"
)

# (apiVersion, kind) of every custom resource the charts render -> its CRD file.
CRD_FILES = {
    ("ray.io/v1", "RayService"): "crds/kuberay/ray.io_rayservices.yaml",
    ("keda.sh/v1alpha1", "ScaledObject"): "crds/keda/keda.sh_scaledobjects.yaml",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "crds/keda/keda.sh_triggerauthentications.yaml",
    ("kafka.strimzi.io/v1", "KafkaTopic"): "crds/strimzi/043-Crd-kafkatopic.yaml",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "crds/prometheus-operator/monitoring.coreos.com_servicemonitors.yaml",
    # Not among the handouts: fetched by `make test` from the prometheus-operator Go module.
    ("monitoring.coreos.com/v1", "PrometheusRule"): REPO_ROOT / ".cache/crds/monitoring.coreos.com_prometheusrules.yaml",
}

HARDENED_CONTAINER = {
    "runAsNonRoot": True,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


# ---------------------------------------------------------------------------------------------
# helm
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def helm_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """helm's cache, config and data in a temporary folder; no kube context."""
    try:
        return support_helm.helm_env(tmp_path_factory.mktemp("helm-home"))
    except FileNotFoundError as exc:
        pytest.fail(str(exc))


run_helm = support_helm.run_helm


@pytest.fixture(scope="session")
def charts_dir(tmp_path_factory: pytest.TempPathFactory, helm_env: dict[str, str]) -> Path:
    """A copy of charts/ with the file:// dependencies built offline (no repository is contacted)."""
    return support_helm.charts_copy(tmp_path_factory.mktemp("charts") / "charts", helm_env)


def template(
    helm_env: dict[str, str], charts_dir: Path, *args: str, chart: str = "slm-services"
) -> subprocess.CompletedProcess:
    return run_helm(helm_env, "template", RELEASE, charts_dir / chart, "--namespace", "slm", *args)


def render(helm_env: dict[str, str], charts_dir: Path, *args: str, chart: str = "slm-services") -> list[dict]:
    result = template(helm_env, charts_dir, *args, chart=chart)
    assert result.returncode == 0, result.stderr
    assert MACHINE_PATH not in result.stdout, "a rendered manifest names a machine path"
    return [doc for doc in yaml.load_all(result.stdout, Loader=YAML_LOADER) if doc]


def set_args(values: dict[str, Any]) -> list[str]:
    """--set-json flags, one per top-level key."""
    return [arg for key, value in values.items() for arg in ("--set-json", f"{key}={json.dumps(value)}")]


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [doc for doc in docs if doc["kind"] == kind]


def named(docs: list[dict], kind: str, name: str) -> dict:
    matches = [doc for doc in by_kind(docs, kind) if doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, got {[d['metadata']['name'] for d in by_kind(docs, kind)]}"
    return matches[0]


# ---------------------------------------------------------------------------------------------
# schemas
# ---------------------------------------------------------------------------------------------


def crd_to_json_schema(node: Any) -> Any:
    """An OpenAPI v3 CRD schema as JSON Schema, as strict as the API server's field validation.

    `x-kubernetes-int-or-string` becomes integer-or-string, `nullable` admits null, and an object
    with `properties` refuses unknown fields unless `x-kubernetes-preserve-unknown-fields` is set.
    Other `x-kubernetes-*` keys are dropped.
    """
    if isinstance(node, list):
        return [crd_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: crd_to_json_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.lru_cache(maxsize=None)
def crd_validator(api_version: str, kind: str):
    import jsonschema

    crd = yaml.load((K8S_SCHEMAS / CRD_FILES[(api_version, kind)]).read_text(), Loader=YAML_LOADER)
    group, version = api_version.split("/")
    assert crd["spec"]["group"] == group and crd["spec"]["names"]["kind"] == kind
    served = {v["name"]: v for v in crd["spec"]["versions"] if v.get("served")}
    assert version in served, f"{api_version} {kind} is not served by {CRD_FILES[(api_version, kind)]}"
    schema = crd_to_json_schema(served[version]["schema"]["openAPIV3Schema"])
    return jsonschema.Draft7Validator(schema)


def validate_object(doc: dict) -> None:
    """Kubernetes objects through kubernetes-validate (strict), custom resources through their CRD."""
    import kubernetes_validate

    key = (doc["apiVersion"], doc["kind"])
    where = f"{doc['kind']} {doc['metadata'].get('name')}"
    if key in CRD_FILES:
        errors = sorted(crd_validator(*key).iter_errors(doc), key=lambda e: list(e.absolute_path))
        assert not errors, f"{where}: " + "; ".join(
            f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}" for e in errors[:5]
        )
    else:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{where}: {'/'.join(map(str, error.path))}: {error.message}")


def pod_specs(docs: list[dict]) -> list[tuple[str, dict]]:
    """Every pod spec: Deployments, and the head and worker groups of RayServices."""
    specs = []
    for doc in by_kind(docs, "Deployment"):
        specs.append((f"Deployment {doc['metadata']['name']}", doc["spec"]["template"]["spec"]))
    for doc in by_kind(docs, "RayService"):
        cluster = doc["spec"]["rayClusterConfig"]
        specs.append((f"RayService {doc['metadata']['name']} head", cluster["headGroupSpec"]["template"]["spec"]))
        for group in cluster["workerGroupSpecs"]:
            specs.append((f"RayService {doc['metadata']['name']} {group['groupName']}", group["template"]["spec"]))
    return specs


def assert_valid_and_hardened(docs: list[dict]) -> None:
    for doc in docs:
        validate_object(doc)
    specs = pod_specs(docs)
    assert specs, "no workload rendered"
    for where, spec in specs:
        pod_context = spec["securityContext"]
        assert pod_context["runAsNonRoot"] is True and pod_context["runAsUser"] == 10001, where
        assert pod_context["seccompProfile"] == {"type": "RuntimeDefault"}, where
        for container in spec["containers"] + spec.get("initContainers", []):
            context = container["securityContext"]
            for field, value in HARDENED_CONTAINER.items():
                assert context[field] == value, f"{where} {container['name']}: securityContext.{field}"
            assert container.get("resources"), f"{where} {container['name']}: no resources"
        mounts = {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
        assert "/tmp" in mounts, f"{where}: /tmp must be a writable emptyDir"


# ---------------------------------------------------------------------------------------------
# lint and dependencies
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chart", "values_file"),
    [
        ("slm-task", None),
        ("slm-services", None),
        ("slm-services", "values-dev.yaml"),
        ("slm-services", "values-production.yaml"),
        ("slm-services", "values-production-keda.yaml"),
    ],
)
def test_helm_lint_strict(helm_env, charts_dir, chart, values_file):
    # The library chart (charts/common) is linted through the charts that use it.
    args = ["lint", "--strict", charts_dir / chart]
    if values_file:
        args += ["--values", charts_dir / chart / values_file]
    result = run_helm(helm_env, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_umbrella_dependencies_build_offline(charts_dir):
    lock = yaml.safe_load((charts_dir / "slm-services" / "Chart.lock").read_text())
    assert all(dep["repository"].startswith("file://") for dep in lock["dependencies"])
    built = sorted(p.name for p in (charts_dir / "slm-services" / "charts").glob("*.tgz"))
    assert built == ["slm-common-0.1.0.tgz", "slm-task-0.1.0.tgz"]
    chart = yaml.safe_load((CHARTS / "slm-services" / "Chart.yaml").read_text())
    aliases = {dep.get("alias"): dep.get("condition") for dep in chart["dependencies"] if dep["name"] == "slm-task"}
    assert aliases == {task: f"{task}.enabled" for task in TASKS}
    common = yaml.safe_load((CHARTS / "common" / "Chart.yaml").read_text())
    assert common["type"] == "library"


def _documented_params(values_file: Path) -> list[str]:
    return [line.split()[2] for line in values_file.read_text().splitlines()
            if line.strip().startswith(("## @param", "## @skip"))]


def _leaf_keys(values: Any, prefix: str = "") -> list[str]:
    if isinstance(values, dict) and values:
        return [k for key, value in values.items() for k in _leaf_keys(value, f"{prefix}{key}.")]
    return [prefix.rstrip(".")]


@pytest.mark.parametrize("chart", ["slm-task", "slm-services"])
def test_every_value_has_a_param_line_in_the_readme_table(chart):
    values_file = CHARTS / chart / "values.yaml"
    documented = _documented_params(values_file)
    for key in _leaf_keys(yaml.safe_load(values_file.read_text())):
        parts = key.split(".")
        assert any(".".join(parts[:n]) in documented for n in range(1, len(parts) + 1)), f"{key}: no ## @param"
    import importlib.util

    spec = importlib.util.spec_from_file_location("values_table", CHARTS / "values_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    readme = (CHARTS / chart / "README.md").read_text()
    table = readme.split(module.START)[1].split(module.END)[0].strip()
    assert table == module.values_table(values_file), f"{chart}/README.md is stale: run make charts-readme"


def test_umbrella_and_task_schemas_agree_on_global_settings():
    task = json.loads((CHARTS / "slm-task" / "values.schema.json").read_text())
    umbrella = json.loads((CHARTS / "slm-services" / "values.schema.json").read_text())
    assert umbrella["properties"]["global"] == task["properties"]["global"]
    assert set(umbrella["properties"]) == {"global", "slm-common", *TASKS}


def test_charts_name_no_machine_paths():
    for path in CHARTS.rglob("*"):
        if path.is_file() and path.suffix in {".yaml", ".tpl", ".txt", ".json", ".md", ".mk"}:
            assert MACHINE_PATH not in path.read_text(), path


# ---------------------------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------------------------


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


@needs_k8s_schemas
def test_model_from_pvc_or_init_container(helm_env, charts_dir):
    values = {
        "sentiment.mode": "deployment",
        "sentiment.model": {"source": "pvc", "pvc": {"claimName": "slm-models"}},
        "transactions.model": {
            "source": "initContainer",
            "initContainer": {
                "image": "amazon/aws-cli:2.31.0",
                "command": ["sh", "-c"],
                "args": ['aws s3 cp --recursive "$SLM_MODEL_URL" "$SLM_MODEL_DIR"'],
                "url": "s3://models/transactions/2026-11-26/",
                "extraEnvVarsSecret": "model-store-credentials",
            },
        },
    }
    docs = render(helm_env, charts_dir, *set_args(values))
    assert_valid_and_hardened(docs)
    sentiment = named(docs, "Deployment", f"{RELEASE}-sentiment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in sentiment["volumes"]}
    assert volumes["model"]["persistentVolumeClaim"] == {"claimName": "slm-models", "readOnly": True}
    assert named(docs, "ConfigMap", f"{RELEASE}-sentiment")["data"]["SLM_MODEL_DIR"] == "/models/sentiment"

    ray_service = named(docs, "RayService", f"{RELEASE}-transactions")
    worker = ray_service["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"]
    (init,) = worker["initContainers"]
    env = {e["name"]: e["value"] for e in init["env"]}
    assert env["SLM_MODEL_DIR"] == "/models/transactions"
    assert env["SLM_MODEL_URL"] == "s3://models/transactions/2026-11-26/"
    assert init["envFrom"] == [{"secretRef": {"name": "model-store-credentials"}}]
    assert {v["name"]: v for v in worker["volumes"]}["model"]["emptyDir"]["sizeLimit"] == "1Gi"


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


@pytest.mark.parametrize("release", ["1slm", "9-to-5", "slm.prod"])  # helm itself accepts all three
def test_release_names_the_server_would_refuse_are_refused_by_the_chart(helm_env, charts_dir, release):
    """Service names must be DNS-1035 labels; the API server, not helm template, would find out."""
    result = run_helm(helm_env, "template", release, charts_dir / "slm-services")
    assert result.returncode != 0, "a release name the API server refuses was rendered"
    # helm stops at the first subchart that fails, in no fixed order.
    pattern = rf'the Service name "{re.escape(release)}-[a-z]+" \(release "{re.escape(release)}"\) must be a DNS-1035 label'
    assert re.search(pattern, result.stderr), result.stderr


def test_deployment_mode_pdb_keeps_max_unavailable(helm_env, charts_dir):
    docs = render(helm_env, charts_dir, *set_args({"sentiment.mode": "deployment"}))
    assert named(docs, "PodDisruptionBudget", f"{RELEASE}-sentiment")["spec"]["maxUnavailable"] == 1


def test_long_release_names_are_cut_to_63(helm_env, charts_dir):
    release = "a-release-name-that-is-quite-long-for-a-cluster-" + "x" * 5
    result = run_helm(helm_env, "template", release, charts_dir / "slm-services")
    assert result.returncode == 0, result.stderr
    for doc in yaml.load_all(result.stdout, Loader=YAML_LOADER):
        if doc:
            assert len(doc["metadata"]["name"]) <= 63 and not doc["metadata"]["name"].endswith("-")


# ---------------------------------------------------------------------------------------------
# bad values are refused with the schema's (or the chart's) message
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "messages"),
    [
        ({"sentiment.replicaCount": -1}, ["sentiment:", "at '/replicaCount': minimum: got -1, want 0"]),
        ({"transactions.mode": "serverless"}, ["transactions:", "at '/mode': value must be one of 'ray', 'deployment'"]),
        (
            {"global.slm.kafka.sasl.password": "hunter2"},
            ["at '/global/slm/kafka/sasl': additional properties 'password' not allowed"],
        ),
        ({"entities.kafka.password": "hunter2"}, ["entities:", "at '/kafka': additional properties 'password' not allowed"]),
        ({"helpdesk.replicaCont": 2}, ["helpdesk:", "additional properties 'replicaCont' not allowed"]),
        ({"global.slm.kafka.securityProtocol": "SASL"}, ["at '/global/slm/kafka/securityProtocol': value must be one of"]),
        (
            {"sentiment.keda.enabled": True, "global.slm.kafka.bootstrap": "kafka:9092"},
            ["sentiment: keda.enabled needs mode=deployment"],
        ),
        (
            {"global.slm.kafka.bootstrap": "kafka:9092", "global.slm.kafka.securityProtocol": "SASL_SSL",
             "global.slm.kafka.sasl.mechanism": "PLAIN"},
            ["global.slm.kafka.sasl.existingSecret: must name an existing Secret"],
        ),
        ({"global.slm.strimzi.enabled": True}, ["global.slm.strimzi.clusterName: must name the Strimzi Kafka cluster"]),
        ({"sentiment.model.source": "pvc"}, ["sentiment: model.pvc.claimName must name an existing PersistentVolumeClaim"]),
        # What the API server refuses, refused before anything reaches it:
        ({"sentiment.livenessProbe.successThreshold": 2}, ["sentiment:", "at '/livenessProbe/successThreshold'"]),
        ({"helpdesk.startupProbe.successThreshold": 3}, ["helpdesk:", "at '/startupProbe/successThreshold'"]),
        ({"entities.resources": {"limits": {"memory": "1GB"}}}, ["entities:", "at '/resources/limits/memory'"]),
        ({"transactions.ray.worker.resources": {"requests": {"cpu": "one"}}},
         ["transactions:", "at '/ray/worker/resources/requests/cpu'"]),
        ({"sentiment.podLabels": {"team": "nlp!"}}, ["sentiment:", "at '/podLabels/team'"]),
        ({"sentiment.commonLabels": {"bad key!": "x"}}, ["sentiment:", "invalid propertyName 'bad key!'"]),
        ({"sentiment.pdb.maxUnavailable": "50%"}, ["sentiment: pdb.maxUnavailable must be a number of pods in ray mode"]),
        ({"helpdesk.kafka.delivery": "exactly-once"}, ["helpdesk:", "at '/kafka/delivery': value must be one of"]),
        ({"helpdesk.kafka.delivery": "exactly_once", "helpdesk.kafka.staticMembership": False,
          "global.slm.kafka.bootstrap": "kafka:9092"},
         ["helpdesk: kafka.delivery=exactly_once needs kafka.staticMembership"]),
    ],
    ids=["negative-replicas", "unknown-mode", "password-in-global", "password-in-task", "typo", "bad-protocol",
         "keda-in-ray-mode", "sasl-without-secret", "strimzi-without-cluster", "pvc-without-claim",
         "liveness-success-threshold", "startup-success-threshold", "memory-1GB", "cpu-word", "label-value",
         "label-key", "ray-pdb-percentage", "delivery-typo", "exactly-once-without-static-membership"],
)
def test_bad_values_fail_with_a_clear_message(helm_env, charts_dir, values, messages):
    result = template(helm_env, charts_dir, *set_args(values))
    assert result.returncode != 0, "helm template accepted bad values"
    for message in messages:
        assert message in result.stderr, result.stderr


# ---------------------------------------------------------------------------------------------
# skaffold.yaml, Dockerfile, bentofile, requirements-serve.txt
# ---------------------------------------------------------------------------------------------


@needs_k8s_schemas
def test_skaffold_yaml_matches_its_schema():
    import jsonschema

    schema = json.loads((K8S_SCHEMAS / "skaffold" / "v4beta14.json").read_text())
    config = yaml.safe_load((REPO_ROOT / "skaffold.yaml").read_text())
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(config))
    assert not errors, [e.message[:300] for e in errors]
    assert config["apiVersion"] == "skaffold/v4beta14"


def test_skaffold_builds_every_task_and_deploys_the_umbrella():
    config = yaml.safe_load((REPO_ROOT / "skaffold.yaml").read_text())
    artifacts = {a["image"]: a for a in config["build"]["artifacts"]}
    assert set(artifacts) == {f"slm-{task}" for task in TASKS}
    for task in TASKS:
        docker = artifacts[f"slm-{task}"]["docker"]
        assert docker["buildArgs"] == {"TASK": task}
        assert (REPO_ROOT / artifacts[f"slm-{task}"]["context"] / docker["dockerfile"]).is_file()
    (release,) = config["deploy"]["helm"]["releases"]
    assert (REPO_ROOT / release["chartPath"] / "Chart.yaml").is_file()
    for task in TASKS:
        image = task.replace("-", "_")
        assert release["setValueTemplates"][f"{task}.image.repository"] == f"{{{{.IMAGE_REPO_slm_{image}}}}}"
        assert release["setValueTemplates"][f"{task}.image.tag"] == f"{{{{.IMAGE_TAG_slm_{image}}}}}"
    profiles = {p["name"]: p for p in config["profiles"]}
    assert {"dev", "production", "production-keda", "sentiment-only"} <= set(profiles)
    for profile in profiles.values():
        for patch in profile.get("patches", []):
            if patch["path"].endswith("/valuesFiles"):
                assert all((REPO_ROOT / f).is_file() for f in patch["value"])


def test_skaffold_local_profile_builds_each_task_with_podman_under_skaffolds_tag():
    config = yaml.safe_load((REPO_ROOT / "skaffold.yaml").read_text())
    artifacts = [a["image"] for a in config["build"]["artifacts"]]
    (local,) = [p for p in config["profiles"] if p["name"] == "local"]
    custom = {p["path"]: p["value"] for p in local["patches"] if p["op"] == "add"}
    removed = {p["path"] for p in local["patches"] if p["op"] == "remove"}
    for index, image in enumerate(artifacts):
        task = image.removeprefix("slm-")
        assert f"/build/artifacts/{index}/docker" in removed
        build = custom[f"/build/artifacts/{index}/custom"]
        assert build["buildCommand"] == f'.venv/bin/slm images build --task {task} --tag "$IMAGE" --load'
        assert f"models/{task}" in build["dependencies"]["paths"]
        assert all((REPO_ROOT / path).exists() for path in build["dependencies"]["paths"])


def test_dockerfile_is_non_root_and_installs_only_serving_pins():
    dockerfile = (REPO_ROOT / "services" / "Dockerfile").read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", dockerfile, re.M)
    assert "pip install --no-deps -r requirements-serve.txt" in dockerfile
    assert "pip install --no-deps ." in dockerfile
    stages = re.split(r"^FROM ", dockerfile, flags=re.M)[1:]
    assert re.search(r"^USER 10001:10001$", stages[-1], re.M), "the runtime stage must run as uid 10001"
    for var in ("HOME=/tmp", "TMPDIR=/tmp", "BENTOML_HOME=/tmp/bentoml"):
        assert var in stages[-1]
    # Every file the build copies from the context is let through by the dockerignore file.
    ignore = (REPO_ROOT / "services" / "Dockerfile.dockerignore").read_text().split()
    for line in re.findall(r"^COPY (?!--from)(.+)$", dockerfile, re.M):
        for source in line.split()[:-1]:
            top = source.rstrip("*/").split("/")[0]
            assert f"!{top}" in ignore, f"COPY {source} is excluded by Dockerfile.dockerignore"


def test_sentiment_bentofile():
    bentofile = yaml.safe_load((REPO_ROOT / "services" / "sentiment" / "bentofile.yaml").read_text())
    assert bentofile["service"] == "services.sentiment.service:Sentiment"
    assert bentofile["python"]["requirements_txt"] == "requirements-serve.txt"
    assert (REPO_ROOT / "services" / "sentiment" / "service.py").is_file()
    assert "services/sentiment/*.py" in bentofile["include"]


def _pins(path: Path) -> dict[str, tuple[str, str]]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = (name, version)
    return pins


def test_serve_requirements_are_the_lock_pins_of_what_serving_imports():
    import importlib.metadata

    from packaging.requirements import Requirement

    serve = _pins(REPO_ROOT / "requirements-serve.txt")
    lock = _pins(REPO_ROOT / "requirements.lock")
    for key, (name, version) in serve.items():
        assert key in lock and lock[key][1] == version, f"{name}=={version} differs from requirements.lock"
    assert not {"torch", "transformers", "optimum", "optimum-onnx", "scikit-learn"} & set(serve)
    # The closure of the serving roots over the installed packages' metadata, with the extras
    # asked for (ray[serve] for mode: ray) and no others.
    # kafka-python's codec extras: a compressed batch it cannot decompress is undecodable.
    roots = ["bentoml", "onnxruntime", "tokenizers", "kafka-python[crc32c,lz4,snappy,zstd]", "pydantic", "pydantic-settings",
             "opentelemetry-api", "opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http",
             "opentelemetry-instrumentation-asgi", "numpy", "httpx", "click", "ray[serve]"]
    closure, seen, todo = set(), set(), [Requirement(r) for r in roots]
    while todo:
        wanted = todo.pop()
        key = re.sub(r"[-_.]+", "-", wanted.name).lower()
        if (key, frozenset(wanted.extras)) in seen:
            continue
        seen.add((key, frozenset(wanted.extras)))
        closure.add(key)
        for spec in importlib.metadata.distribution(key).requires or []:
            requirement = Requirement(spec)
            if requirement.marker is None or any(requirement.marker.evaluate({"extra": extra})
                                                 for extra in {"", *wanted.extras}):
                todo.append(requirement)
    assert set(serve) == closure, {"missing": sorted(closure - set(serve)), "extra": sorted(set(serve) - closure)}


def test_crd_conversion_is_strict_about_unknown_fields():
    schema = crd_to_json_schema({
        "type": "object",
        "properties": {
            "port": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {"a": {"type": "string"}}},
            "maybe": {"type": "string", "nullable": True},
        },
    })
    import jsonschema

    validator = jsonschema.Draft7Validator(copy.deepcopy(schema))
    assert validator.is_valid({"port": 8080, "free": {"b": 1}, "maybe": None})
    assert validator.is_valid({"port": "http"})
    assert not validator.is_valid({"prot": 8080})


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
