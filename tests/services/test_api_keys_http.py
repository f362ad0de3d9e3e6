"""API keys over real HTTP, through ``bentoml serve`` (``slm serve``): 401 without a valid key,
probes and metrics open, keys rotated by changing the file, the OpenAPI document's scheme.
The Ray Serve ingress is tested in test_ray_replicas.py with the same assertions."""

from __future__ import annotations

import hashlib
import os

import httpx
import pytest

from tests.support.processes import ServiceProcess

pytestmark = [pytest.mark.integration]

BODY = {"items": [{"id": "k1", "text": "Shares rally after earnings beat"}]}


def write_keys(path, *keys: str) -> None:
    """Replace the keys file as a Secret volume update does: a new file moved into place."""
    staged = path.with_name(path.name + ".new")
    staged.write_text("# sha256 of each key\n" + "".join(hashlib.sha256(k.encode()).hexdigest() + "\n" for k in keys))
    os.replace(staged, path)


def check_api_keys(url: str, keys_file) -> None:
    """What a secured service answers; shared with the Ray Serve test."""
    missing = httpx.post(f"{url}/predict", json=BODY, timeout=30)
    assert missing.status_code == 401, missing.text
    assert missing.json() == {"error": "missing API key: send Authorization: Bearer <key> or X-API-Key: <key>",
                              "detail": []}
    assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong = httpx.post(f"{url}/predict", json=BODY, headers={"Authorization": "Bearer not-the-key"}, timeout=30)
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid API key")
    bearer = httpx.post(f"{url}/predict", json=BODY, headers={"Authorization": "Bearer first-key"}, timeout=30)
    assert bearer.status_code == 200 and bearer.json()[0]["id"] == "k1"
    header = httpx.post(f"{url}/predict", json=BODY, headers={"X-API-Key": "first-key"}, timeout=30)
    assert header.status_code == 200
    for path in ("/readyz", "/healthz"):
        assert httpx.get(f"{url}{path}", timeout=30).status_code == 200, path
    # Open: never refused for want of a key (behind the Ray Serve ingress BentoML's /metrics answers
    # 500 whatever the key: its Prometheus set-up is the worker's, which a replica is not).
    assert httpx.get(f"{url}/metrics", timeout=30).status_code != 401
    document = httpx.get(f"{url}/docs.json", timeout=30).json()
    assert set(document["components"]["securitySchemes"]) == {"bearerAuth", "apiKeyHeader"}
    predict = document["paths"]["/predict"]["post"]
    assert predict["security"] == [{"bearerAuth": []}, {"apiKeyHeader": []}] and "401" in predict["responses"]
    # Rotation: the next request already uses the new file, no restart.
    write_keys(keys_file, "second-key")
    assert httpx.post(f"{url}/predict", json=BODY, headers={"X-API-Key": "first-key"}, timeout=30).status_code == 401
    assert httpx.post(f"{url}/predict", json=BODY, headers={"X-API-Key": "second-key"}, timeout=30).status_code == 200


def test_bentoml_serve_requires_a_valid_key_and_rotates_keys_without_restart(quick_model_dir, tmp_path):
    keys_file = tmp_path / "api-keys"
    write_keys(keys_file, "first-key")
    service = ServiceProcess("sentiment", quick_model_dir, tmp_path / "serve.log",
                             env={"SLM_API_KEYS_FILE": str(keys_file), "SLM_KAFKA_BOOTSTRAP": ""}).wait_ready()
    try:
        check_api_keys(service.url, keys_file)
        assert httpx.get(f"{service.url}/metrics", timeout=30).status_code == 200
        assert "first-key" not in service.log() and "second-key" not in service.log()
    finally:
        assert service.terminate() == 0


def test_without_a_keys_file_the_api_is_open_and_the_document_declares_no_scheme(quick_model_dir, tmp_path):
    service = ServiceProcess("sentiment", quick_model_dir, tmp_path / "serve.log",
                             env={"SLM_KAFKA_BOOTSTRAP": ""}).wait_ready()
    try:
        assert httpx.post(f"{service.url}/predict", json=BODY, timeout=30).status_code == 200
        assert "securitySchemes" not in httpx.get(f"{service.url}/docs.json", timeout=30).json()["components"]
    finally:
        assert service.terminate() == 0
