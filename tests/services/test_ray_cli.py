"""``slm serve sentiment --replicas 2``: the command a user runs, end to end, with its own cluster."""

from __future__ import annotations

import ipaddress
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support.kafka_io import group_members
from tests.support.processes import REPO_ROOT, free_port, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SLM = str(Path(sys.executable).with_name("slm"))


def _loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1, an IPv4 socket seen through IPv6
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def test_serve_replicas_two_group_members_by_slm_kafka_groups_and_a_graceful_stop(quick_model_dir, kafka_bootstrap,
                                                                                  tmp_path):
    prefix = f"cli{free_port()}."
    group = f"{prefix}slm-sentiment"
    port = free_port()
    env = {**os.environ, "SLM_KAFKA_TOPIC_PREFIX": prefix, "SLM_KAFKA_GROUP_ID": group,
           "SLM_KAFKA_PARTITIONS": "4", "OTEL_SDK_DISABLED": "true"}
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([SLM, "serve", "sentiment", "--replicas", "2", "--cpus-per-replica", "0.5",
                                 "--port", str(port), "--model", str(quick_model_dir), "--kafka", kafka_bootstrap],
                                cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def ready() -> bool:
            assert proc.poll() is None, log_path.read_text(errors="replace")[-3000:]
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, 240, interval=1, what="the Serve proxy's /readyz")
        wait_for(lambda: len(group_members(kafka_bootstrap, group)) == 2, 120, interval=1, what="two group members")
        described = subprocess.run([SLM, "kafka", "groups", group, "--bootstrap", kafka_bootstrap],
                                   capture_output=True, text=True, timeout=120, check=True).stdout
        assignments = re.findall(rf"{re.escape(prefix)}sentiment\.requests:([\d,]+)", described)
        assert len(assignments) == 2, described
        assert sorted(int(p) for a in assignments for p in a.split(",")) == [0, 1, 2, 3]

        response = httpx.post(f"http://127.0.0.1:{port}/predict", json={"items": [{"id": "a", "text": "Shares soar"}]},
                              timeout=60)
        assert response.status_code == 200 and response.json()[0]["id"] == "a"

        descendants = psutil.Process(proc.pid).children(recursive=True)
        assert descendants, "no Ray processes under slm serve"
        # Every listener of the cluster (GCS, raylet, agents, proxy, replicas' gRPC) on loopback only.
        listening = [(p.name(), c.laddr) for p in [psutil.Process(proc.pid), *descendants]
                     for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
        assert listening, "no listening socket found under slm serve"
        assert [(name, addr) for name, addr in listening if not _loopback(addr.ip)] == []
        proc.send_signal(signal.SIGTERM)  # as Kubernetes stops a container: the main process only
        assert proc.wait(120) == 0
        _, alive = psutil.wait_procs(descendants, timeout=60)
        assert not alive, f"left running: {[p.pid for p in alive]}"
        stopped = re.findall(r"pid=(\d+)\).*consumer loop stopped task=sentiment", log_path.read_text(errors="replace"))
        assert len(set(stopped)) == 2, "a replica did not stop its consumer loop"
    finally:
        if proc.poll() is None:
            proc.kill()
