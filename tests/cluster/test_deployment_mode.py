"""`helm install` of the umbrella chart in deployment mode, as a platform team would run it:
all four tasks, Kafka on, in a namespace that enforces the restricted Pod Security level; then
REST through each Service, a record through each task's topics, an upgrade that rolls while
records flow, and an uninstall that leaves nothing behind."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
import yaml

from devtools import local_cluster
from devtools.local_cluster.kubectl import kubectl_json
from shared.task_kinds import TASKS
from tests.cluster.conftest import predict, request_records, restricted_namespace, unique
from tests.support.kafka_io import drain, produce
from tests.support.processes import wait_for

NAMESPACE = "slm-e2e"
RELEASE = "e2e"
TOPIC_PREFIX = "e2e."


def _values(kafka_for_pods: str, annotation: str) -> str:
    task = {"mode": "deployment", "resourcesPreset": "nano", "image": {"pullPolicy": "Never"},
            "podAnnotations": {"slm-e2e/rollout": annotation},
            # The chart's default 30 s start-up allowance is for a node that is not also building images.
            "startupProbe": {"failureThreshold": 60}}
    values = {"global": {"slm": {"kafka": {"bootstrap": kafka_for_pods, "topicPrefix": TOPIC_PREFIX}}},
              **{name: task for name in TASKS}}
    return yaml.safe_dump(values)


@pytest.fixture(scope="module")
def release(cluster, helm, cluster_kafka, task_images, tmp_path_factory):
    namespace = restricted_namespace(cluster, NAMESPACE)
    values = tmp_path_factory.mktemp("values") / "values.yaml"
    values.write_text(_values(cluster_kafka["pods"], "first"))
    started = time.monotonic()
    result = helm("install", RELEASE, helm.charts / "slm-services", "--namespace", namespace, "--wait",
                  "--timeout", "15m", "-f", values)
    assert result.returncode == 0, result.stderr
    ready_s = time.monotonic() - started
    print(f"\ndeployment mode: helm install --wait of four tasks took {ready_s:.0f} s")
    # Ready pods reach a Service's rules a moment later (EndpointSlice, then kube-proxy's sync):
    # until then its address refuses connections, as it would for any client.
    for task in TASKS:
        address = _service_address(cluster, namespace, task)
        wait_for(lambda: _routes(address), 60, interval=0.5, what=f"the {task} Service to route to its pods")
    yield {"namespace": namespace, "values": values, "ready_s": ready_s}
    helm("uninstall", RELEASE, "--namespace", namespace, "--wait")


def _pods(cluster, namespace: str) -> list[dict]:
    return kubectl_json(cluster, "get", "pods", "-n", namespace, "-l", f"app.kubernetes.io/instance={RELEASE}")["items"]


def _routes(address: str) -> bool:
    try:
        return httpx.get(f"http://{address}/readyz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def _service_address(cluster, namespace: str, task: str) -> str:
    service = kubectl_json(cluster, "get", "service", "-n", namespace, f"{RELEASE}-{task}")
    return f"{service['spec']['clusterIP']}:{service['spec']['ports'][0]['port']}"


def _revisions(cluster, namespace: str) -> dict[str, int]:
    """Each Deployment's rollout revision, once its rollout is complete."""
    deployments = kubectl_json(cluster, "get", "deployments", "-n", namespace, "-l",
                               f"app.kubernetes.io/instance={RELEASE}")["items"]
    return {d["metadata"]["name"]: int(d["metadata"]["annotations"]["deployment.kubernetes.io/revision"])
            for d in deployments}


def test_every_pod_is_ready_non_root_and_read_only(cluster, release):
    pods = _pods(cluster, release["namespace"])
    assert sorted(p["metadata"]["labels"]["slm-services/task"] for p in pods) == sorted(TASKS)
    for pod in pods:
        conditions = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
        assert conditions["Ready"] == "True", pod["metadata"]["name"]
        (container,) = pod["spec"]["containers"]
        security = {**pod["spec"].get("securityContext", {}), **container["securityContext"]}
        assert security["runAsNonRoot"] is True and security["runAsUser"] == 10001
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
    labels = kubectl_json(cluster, "get", "namespace", release["namespace"])["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"  # and the pods were admitted


def test_each_service_answers_rest(cluster, release):
    for task in TASKS:
        response = predict(_service_address(cluster, release["namespace"], task), task, f"rest-{task}")
        assert response.status_code == 200, (task, response.text)
        (answer,) = response.json()
        assert answer["id"] == f"rest-{task}" and answer["task"] == task
        assert answer["model"].startswith(f"{task}-minilm-l6:")


def test_each_task_answers_a_kafka_record(release, cluster_kafka):
    for task in TASKS:
        tag = unique(task)
        produce(cluster_kafka["host"], f"{TOPIC_PREFIX}{task}.requests", request_records(task, 1, tag))
        records = drain(cluster_kafka["host"], f"{TOPIC_PREFIX}{task}.results", timeout=180,
                        until=lambda rs: any(json.loads(r.value)["id"] == f"{tag}-0" for r in rs))
        answers = [json.loads(r.value) for r in records if json.loads(r.value)["id"] == f"{tag}-0"]
        assert answers and answers[0]["task"] == task, f"no result for {task}"


def test_an_upgrade_rolls_without_losing_a_record(cluster, helm, release, cluster_kafka):
    task = "sentiment"
    before = _revisions(cluster, release["namespace"])
    release["values"].write_text(_values(cluster_kafka["pods"], "second"))
    upgraded = threading.Event()
    sent: list[str] = []

    def stream() -> None:  # records keep arriving, 10 every half second, until the rollout is over
        while not upgraded.is_set():
            tag = unique("upgrade")
            produce(cluster_kafka["host"], f"{TOPIC_PREFIX}{task}.requests", request_records(task, 10, tag))
            sent.extend(f"{tag}-{i}" for i in range(10))
            upgraded.wait(0.5)

    producer = threading.Thread(target=stream)
    producer.start()
    try:
        result = helm("upgrade", RELEASE, helm.charts / "slm-services", "--namespace", release["namespace"],
                      "--wait", "--timeout", "15m", "-f", release["values"])
    finally:
        upgraded.set()
        producer.join()
    assert result.returncode == 0, result.stderr
    after = _revisions(cluster, release["namespace"])
    assert all(after[name] > before[name] for name in before), f"the upgrade rolled nothing: {before} -> {after}"
    wanted = set(sent)
    assert len(wanted) >= 20, "too few records were sent during the rollout to tell anything"
    records = drain(cluster_kafka["host"], f"{TOPIC_PREFIX}{task}.results", timeout=300,
                    until=lambda rs: wanted <= {json.loads(r.value)["id"] for r in rs})
    missing = wanted - {json.loads(r.value)["id"] for r in records}
    assert not missing, f"{len(missing)} of {len(wanted)} records lost across the rolling upgrade"
    print(f"\nrolling upgrade: {len(wanted)} records sent during it, none lost")


def test_uninstall_removes_everything(cluster, helm, release):
    result = helm("uninstall", RELEASE, "--namespace", release["namespace"], "--wait")
    assert result.returncode == 0, result.stderr
    # Pods end after their grace period (the Kafka loop commits and leaves its group first).
    local_cluster.kubectl(cluster, "wait", "--for=delete", "pods", "-n", release["namespace"], "-l",
                          f"app.kubernetes.io/instance={RELEASE}", "--timeout=180s", timeout=200, check=False)
    kinds = "deployments,services,configmaps,pods,poddisruptionbudgets,networkpolicies,serviceaccounts,hpa"
    left = local_cluster.kubectl(cluster, "get", kinds, "-n", release["namespace"], "-l",
                                 f"app.kubernetes.io/instance={RELEASE}", "-o", "name").stdout.split()
    assert not left, f"left after uninstall: {left}"
