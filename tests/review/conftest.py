"""One real Label Studio for the run (started once, on a free port, its data in a temporary folder), and review
bridges started as ``slm review bridge`` processes against it and the session's broker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from devtools.label_studio.config import LabelStudioConfig
from devtools.label_studio.lifecycle import down, up
from shared.review.label_studio import LabelStudio
from tests.support.kafka_io import produce
from tests.support.processes import REPO_ROOT, free_port
from devtools.service_process import ServerProcess

SLM = str(Path(REPO_ROOT) / ".venv" / "bin" / "slm")


@pytest.fixture(scope="session")
def label_studio_config(tmp_path_factory) -> Iterator[LabelStudioConfig]:
    """The session's Label Studio: installed once into .cache (``make test`` does it beforehand)."""
    cfg = replace(LabelStudioConfig.from_env(), port=free_port(), home=tmp_path_factory.mktemp("label-studio"))
    up(cfg)
    try:
        yield cfg
    finally:
        down(cfg)


@pytest.fixture(scope="session")
def label_studio(label_studio_config) -> dict:
    """``slm review status --json``'s view of it: url, token, username, password."""
    from devtools.label_studio.lifecycle import status

    return status(label_studio_config)


@pytest.fixture
def label_studio_client(label_studio) -> Iterator[LabelStudio]:
    client = LabelStudio(label_studio["url"], label_studio["token"])
    yield client
    client.close()


def review_record(item_id: str, text: str, *, task: str = "sentiment", label: str = "positive", score: float = 0.41,
                  entities: list[dict] | None = None) -> bytes:
    """A review record as the services write it: the result plus the request's input."""
    result = {"id": item_id, "task": task, "model": "test-model:1", "review": True,
              "received_at": "2026-12-05T12:00:00Z", "latency_ms": 3.0, "input": {"text": text, "fields": {}}}
    if entities is None:
        result.update({"label": label, "score": score, "scores": {label: score}, "top": [{"label": label, "score": score}]})
    else:
        result["entities"] = entities
    return json.dumps(result).encode()


def produce_reviews(bootstrap: str, topic: str, records: list[tuple[str, bytes]],
                    headers: dict[str, list[tuple[str, bytes]]] | None = None) -> None:
    """``records`` as ``(id, value)``, each with the headers ``headers`` gives its id (none by default)."""
    produce(bootstrap, topic, [(key.encode(), value, (headers or {}).get(key, [])) for key, value in records])


class Bridge(ServerProcess):
    """``slm review bridge --task <task>`` in a process of its own."""

    def __init__(self, task: str, log_path: Path, env: dict[str, str]) -> None:
        port = free_port()
        super().__init__([SLM, "review", "bridge", "--task", task, "--port", str(port)], log_path, port=port, env=env,
                         name=f"review bridge {task}")

    def metric(self, name: str) -> float:
        """The sum of a counter's series (0 before the first)."""
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name + "{") or line.startswith(name + " "))


@pytest.fixture
def start_bridge(kafka_bootstrap, topic_prefix, label_studio, tmp_path):
    """``start_bridge(task, **env)`` starts a bridge on this test's topics, in the group ``<prefix>bridge``, with
    its own project ``<prefix><task>``; every bridge started is stopped at the end."""
    started: list[Bridge] = []

    def start(task: str, **env: str) -> Bridge:
        environment = {"SLM_KAFKA_BOOTSTRAP": kafka_bootstrap, "SLM_KAFKA_TOPIC_PREFIX": topic_prefix,
                       "SLM_REVIEW_LABEL_STUDIO_URL": label_studio["url"],
                       "SLM_REVIEW_LABEL_STUDIO_TOKEN": label_studio["token"],
                       "SLM_REVIEW_PROJECT": f"{topic_prefix}{task}", "SLM_REVIEW_GROUP_ID": f"{topic_prefix}bridge",
                       "SLM_REVIEW_RETRY_MAX_S": "2",
                       "SLM_MODEL_DIR": str(Path(REPO_ROOT) / "models" / task), "OTEL_SDK_DISABLED": "true", **env}
        bridge = Bridge(task, tmp_path / f"bridge-{task}-{len(started)}.log", environment)
        started.append(bridge)
        return bridge

    yield start
    for bridge in started:
        bridge.stop(timeout=20)
