"""The charts on a real cluster: the local one-node cluster (`make test-cluster` brings it up and
takes it down), the four task images loaded into its containerd, a Kafka broker with a listener
on the node address, and helm with the cluster's kubeconfig.

Every test here is marked ``cluster``; `make test` leaves them out, `make test-cluster` runs them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from devtools import local_cluster, local_kafka
from shared.task_kinds import TASKS
from tests.support import helm as support_helm

CLUSTER_KAFKA_PORT = 19094


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/cluster/" in str(item.fspath):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def cluster() -> local_cluster.ClusterConfig:
    cfg = local_cluster.ClusterConfig()
    if not local_cluster.status(cfg)["node_ready"]:
        pytest.fail("the local cluster is not up: `make test-cluster` (or `slm cluster up`) starts it")
    return cfg


@pytest.fixture(scope="session")
def task_images(cluster) -> str:
    """The four task images, built (or reused when their inputs are unchanged) and loaded into the
    node's containerd by the command a user runs: `slm images build --load`."""
    slm = Path(sys.executable).with_name("slm")
    result = subprocess.run([str(slm), "images", "build", "--load"], capture_output=True, text=True, timeout=3000)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("loaded into the local cluster") == len(TASKS), result.stdout
    print("\n" + result.stdout)
    return result.stdout


@pytest.fixture(scope="session")
def cluster_kafka(cluster, tmp_path_factory) -> dict[str, str]:
    """A broker of this session's with a second listener on the node address, which pods reach.

    Returns ``host`` (127.0.0.1, for the test) and ``pods`` (node address, for the chart).
    """
    base = local_kafka.BrokerConfig.from_env()
    cfg = local_kafka.BrokerConfig(port=19092, controller_port=19093, cache_dir=base.cache_dir,
                                   data_dir=tmp_path_factory.mktemp("cluster-kafka"),
                                   cluster_listener=f"{cluster.node_ip}:{CLUSTER_KAFKA_PORT}")
    local_kafka.up(cfg)
    try:
        yield {"host": local_kafka.bootstrap(cfg), "pods": cfg.cluster_listener}
    finally:
        local_kafka.down(cfg)


@pytest.fixture(scope="session")
def helm(cluster, tmp_path_factory):
    """``helm(*args)`` with the cluster's kubeconfig; a copy of charts/ with dependencies built."""
    env = support_helm.helm_env(tmp_path_factory.mktemp("helm-home"), kubeconfig=cluster.kubeconfig)
    charts = support_helm.charts_copy(tmp_path_factory.mktemp("charts") / "charts", env)

    def run(*args: str | Path, timeout: float = 900):
        return support_helm.run_helm(env, *args, timeout=timeout)

    run.charts = charts
    return run


def restricted_namespace(cluster, name: str) -> str:
    """A namespace whose Pod Security admission enforces the restricted level."""
    manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {
        "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"}}}
    local_cluster.kubectl(cluster, "apply", "-f", "-", stdin=json.dumps(manifest))
    return name


#: One request per task, in the shape each service takes (docs/contracts.md, "REST").
SAMPLES = {
    "sentiment": {"text": "$AAPL beats estimates and raises guidance"},
    "transactions": {"text": "shell kings 587", "fields": {"amount": 35.0, "currency": "GBP",
                                                          "directorate": "Local Services"}},
    "entities": {"text": "This Loan Agreement is made between Silicon Valley Bank and John Smith."},
    "helpdesk": {"text": "My laptop does not connect to the office VPN since this morning's update."},
}
assert set(SAMPLES) == set(TASKS)


def predict(address: str, task: str, item_id: str) -> httpx.Response:
    return httpx.post(f"http://{address}/predict", json={"items": [{"id": item_id, **SAMPLES[task]}]}, timeout=30)


def request_records(task: str, count: int, tag: str) -> list[tuple[bytes, bytes, list]]:
    return [(f"{tag}-{i}".encode(), json.dumps({"id": f"{tag}-{i}", **SAMPLES[task]}).encode(), [])
            for i in range(count)]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
