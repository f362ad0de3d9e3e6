"""Ray mode on the cluster: the KubeRay operator turns the chart's RayService into a head and a
worker pod whose Serve replica answers through the task's Service, and a node drain can evict
the worker (the PodDisruptionBudget allows it; with maxUnavailable it allowed 0 disruptions)."""

from __future__ import annotations

import time

import pytest
import yaml

from devtools import local_cluster
from devtools.local_cluster.daemons import wait_for
from devtools.local_cluster.kubectl import kubectl_json
from tests.cluster.conftest import predict, restricted_namespace

NAMESPACE = "slm-e2e-ray"
RELEASE = "e2e-ray"
TASK = "sentiment"
FULLNAME = f"{RELEASE}-{TASK}"


def _values(kafka_for_pods: str) -> str:
    small = {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}}
    values = {
        "global": {"slm": {"kafka": {"bootstrap": kafka_for_pods, "topicPrefix": "e2e-ray."}}},
        **{task: {"enabled": False} for task in ("transactions", "entities", "helpdesk")},
        TASK: {"mode": "ray", "image": {"pullPolicy": "Never"},
               "ray": {"autoscaler": {"enabled": False},
                       "serve": {"autoscaling": {"enabled": False}, "replicas": 1},
                       "head": {"resources": small},
                       # num-cpus: Serve's replica asks for one CPU; the request stays small on 2 cores.
                       "worker": {"resources": small, "rayStartParams": {"num-cpus": "1"},
                                  "replicas": 1, "minReplicas": 1, "maxReplicas": 1}}},
    }
    return yaml.safe_dump(values)


def _serve_ready(cluster) -> bool:
    service = kubectl_json(cluster, "get", "rayservice", "-n", NAMESPACE, FULLNAME)
    conditions = {c["type"]: c["status"] for c in service.get("status", {}).get("conditions", [])}
    endpoints = kubectl_json(cluster, "get", "endpointslices", "-n", NAMESPACE, "-l",
                             f"kubernetes.io/service-name={FULLNAME}")["items"]
    ready = [e for s in endpoints for e in s.get("endpoints") or [] if e.get("conditions", {}).get("ready")]
    return conditions.get("Ready") == "True" and bool(ready)


@pytest.fixture(scope="module")
def ray_release(cluster, helm, cluster_kafka, task_images, tmp_path_factory):
    restricted_namespace(cluster, NAMESPACE)
    values = tmp_path_factory.mktemp("ray-values") / "values.yaml"
    values.write_text(_values(cluster_kafka["pods"]))
    started = time.monotonic()
    result = helm("install", RELEASE, helm.charts / "slm-services", "--namespace", NAMESPACE, "-f", values)
    assert result.returncode == 0, result.stderr
    wait_for(lambda: _serve_ready(cluster), timeout=900, what="RayService Ready with a serving endpoint", poll=5)
    print(f"\nray mode: RayService Ready and serving {time.monotonic() - started:.0f} s after helm install")
    yield
    helm("uninstall", RELEASE, "--namespace", NAMESPACE, "--wait")


def _service_address(cluster) -> str:
    service = kubectl_json(cluster, "get", "service", "-n", NAMESPACE, FULLNAME)
    return f"{service['spec']['clusterIP']}:{service['spec']['ports'][0]['port']}"


def test_ray_service_answers_rest(cluster, ray_release):
    response = predict(_service_address(cluster), TASK, "ray-1")
    assert response.status_code == 200, response.text
    (answer,) = response.json()
    assert answer["id"] == "ray-1" and answer["task"] == TASK


def test_a_drain_evicts_the_ray_worker(cluster, ray_release):
    pdb = kubectl_json(cluster, "get", "pdb", "-n", NAMESPACE, FULLNAME)

    def allows_a_disruption() -> bool:
        status = kubectl_json(cluster, "get", "pdb", "-n", NAMESPACE, FULLNAME)["status"]
        return (status.get("observedGeneration") == pdb["metadata"]["generation"]
                and status.get("disruptionsAllowed", 0) >= 1)

    # The disruption controller counts the pods after it first observes the PDB: a CI run read
    # its status in between (observed, no pods counted yet, no disruption allowed).
    wait_for(allows_a_disruption, timeout=120, what="the PDB to allow a disruption")
    workers = kubectl_json(cluster, "get", "pods", "-n", NAMESPACE, "-l", "ray.io/node-type=worker")["items"]
    assert workers, "no Ray worker pod"
    try:
        drained = local_cluster.kubectl(cluster, "drain", cluster.node_name, "--pod-selector", "ray.io/node-type=worker",
                                        "--ignore-daemonsets", "--delete-emptydir-data", "--timeout", "180s",
                                        timeout=240, check=False)
    finally:
        local_cluster.kubectl(cluster, "uncordon", cluster.node_name)
    assert drained.returncode == 0, drained.stderr
    assert "evicted" in drained.stdout
    names = {w["metadata"]["name"] for w in workers}
    remaining = {p["metadata"]["name"] for p in kubectl_json(cluster, "get", "pods", "-n", NAMESPACE, "-l",
                                                             "ray.io/node-type=worker")["items"]}
    assert names.isdisjoint(remaining), "the worker was not evicted"
