"""``slm up`` / ``slm down``: the broker and the services start, answer, and stop for good."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support.processes import REPO_ROOT, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SLM = str(Path(sys.executable).with_name("slm"))


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_up_starts_broker_and_services_and_down_stops_everything(quick_models, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    for task in ("entities", "sentiment"):
        (models / task).symlink_to(quick_models(task))
    kafka_port, port_base = free_port(), min(free_port(), 60000)
    env = {**os.environ, "SLM_MODELS_DIR": str(models), "SLM_KAFKA_PORT": str(kafka_port),
           "SLM_KAFKA_CONTROLLER_PORT": str(free_port()), "SLM_KAFKA_DATA_DIR": str(tmp_path / "kafka"),
           "OTEL_SDK_DISABLED": "true"}
    up = subprocess.run([SLM, "up", "--task", "entities", "--task", "sentiment", "--port-base", str(port_base)],
                        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        entities_port, sentiment_port = port_base + 2, port_base + 4
        assert f"http://127.0.0.1:{entities_port}/predict" in up.stdout
        assert f"http://127.0.0.1:{sentiment_port}/predict" in up.stdout
        for port in (entities_port, sentiment_port):
            assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code == 200
        response = httpx.post(f"http://127.0.0.1:{entities_port}/predict",
                              json={"items": [{"text": "John Smith signed for Acme Bank."}]}, timeout=30)
        assert response.status_code == 200 and response.json()[0]["task"] == "entities"
        assert _listening(kafka_port)
        servers = [p for p in psutil.process_iter(["cmdline"])
                   if any("services.entities.service:Entities" in part for part in (p.info["cmdline"] or []))]
        assert servers, "no entities server process found"
    finally:
        down = subprocess.run([SLM, "down"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert down.returncode == 0, down.stderr[-3000:]
    assert "entities" in down.stdout and "sentiment" in down.stdout
    assert not _listening(entities_port) and not _listening(sentiment_port) and not _listening(kafka_port)
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in servers)
    assert not (tmp_path / "kafka" / "services.json").exists()
