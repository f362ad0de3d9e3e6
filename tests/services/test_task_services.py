"""Transactions, entities and helpdesk: the same service contract as sentiment.

Each service runs as ``slm serve <task>`` with its quick model on the real broker; REST
answers are compared with the model folder loaded in this process, and the Kafka path is
checked for exactly one result per valid request and one DLQ record per invalid one.
"""

from __future__ import annotations

import json

import httpx
import pytest

from shared.kafka import TaskTopics
from shared.runtime import OnnxEntityRecognizer, OnnxTextClassifier, read_model_info
from shared.settings import ServiceSettings
from shared.model_text import model_text
from pipelines.labelled_rows import load_rows
from tests.support.kafka_io import committed_total, drain, produce
from tests.support.processes import ServiceProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TASKS = ["transactions", "entities", "helpdesk"]


@pytest.fixture(scope="module", params=TASKS)
def running(request, quick_models, kafka_bootstrap, tmp_path_factory):
    """(task, model folder, service, topic prefix): one service per task, REST and Kafka."""
    task = request.param
    model_dir = quick_models(task)
    prefix = f"t{task[:4]}{id(request) % 10**6}."
    env = {"SLM_KAFKA_BOOTSTRAP": kafka_bootstrap, "SLM_KAFKA_TOPIC_PREFIX": prefix,
           "SLM_KAFKA_GROUP_ID": f"{prefix}slm-{task}", "SLM_KAFKA_MAX_BATCH": "16"}
    service = ServiceProcess(task, model_dir, tmp_path_factory.mktemp(task) / "serve.log", env=env).wait_ready()
    yield task, model_dir, service, prefix
    assert service.terminate() == 0


# The reference runs the model in the service's run shape: dynamic int8 quantization scales
# activations over each ONNX Runtime run, so another cut of the same batch can move a
# borderline label of a quick model.
SERVICE_RUNS = {"max_batch_size": ServiceSettings().onnx_batch_size,
                "max_batch_tokens": ServiceSettings().onnx_batch_tokens or None}


def _sample(task: str, n: int = 12) -> list[dict]:
    requests, _, _ = load_rows(task, n)
    return [{"id": f"{task}-{i}", **r} for i, r in enumerate(requests)]


def test_rest_batch_matches_the_model_in_order(running):
    task, model_dir, service, _ = running
    items = _sample(task)
    response = httpx.post(f"{service.url}/predict", json={"items": items}, timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [r["id"] for r in body] == [i["id"] for i in items]
    assert {r["task"] for r in body} == {task}
    info = read_model_info(model_dir)
    assert {r["model"] for r in body} == {info.model_id}
    if info.kind == "entities":
        expected = OnnxEntityRecognizer(model_dir, **SERVICE_RUNS).predict([i["text"] for i in items])
        assert any(r["entities"] for r in body), "the quick model found no entity in 12 test sentences"
        for item, result, want in zip(items, body, expected):
            assert [(e["type"], e["start"], e["end"]) for e in result["entities"]] == \
                   [(e.type, e.start, e.end) for e in want]
            for entity in result["entities"]:
                assert item["text"][entity["start"]:entity["end"]] == entity["text"]
                assert entity["type"] in info.training["entity_types"]
        return
    fields = info.columns.get("fields", [])
    expected = OnnxTextClassifier(model_dir, **SERVICE_RUNS).predict(
        [model_text(i["text"], i.get("fields", {}), fields) for i in items])
    for result, want in zip(body, expected):
        assert result["label"] == want.label
        assert result["score"] == pytest.approx(want.score, abs=1e-4)
        assert len(result["top"]) == min(3, len(info.labels))
        assert result["top"][0]["label"] == result["label"]
        assert [t["score"] for t in result["top"]] == sorted((t["score"] for t in result["top"]), reverse=True)


def test_invalid_items_get_422_with_the_reason(running):
    _, _, service, _ = running
    for items, field in (([{"text": "   "}], "text"), ([{"text": "ok", "colour": "red"}], "colour"), ([], "items")):
        response = httpx.post(f"{service.url}/predict", json={"items": items}, timeout=30)
        assert response.status_code == 422, (items, response.text)
        assert field in response.text


def test_openapi_documents_the_task_result(running):
    task, _, service, _ = running
    schema = httpx.get(f"{service.url}/docs.json", timeout=30).json()
    assert "/predict" in schema["paths"]
    expected = "EntitiesResultV1" if task == "entities" else "ClassificationResultV1"
    assert expected in json.dumps(schema["components"])


def test_kafka_results_dlq_and_commits(running, kafka_bootstrap):
    task, _, service, prefix = running
    topics = TaskTopics(task, prefix)
    items = _sample(task, 20)
    valid = [(i["id"].encode(), json.dumps(i).encode(), [("correlation-id", i["id"].encode())]) for i in items]
    invalid = [(b"bad-1", b"\xff\xfe not utf-8", []), (b"bad-2", json.dumps({"text": ""}).encode(), [])]
    produce(kafka_bootstrap, topics.requests, valid + invalid)
    results = drain(kafka_bootstrap, topics.results, until=lambda r: len(r) >= len(valid))
    dlq = drain(kafka_bootstrap, topics.dlq, until=lambda r: len(r) >= 2)
    assert sorted(json.loads(r.value)["id"] for r in results) == sorted(i["id"] for i in items)
    assert all(dict(r.headers)["correlation-id"] == r.key for r in results)
    assert {r.value for r in dlq} == {v for _, v, _ in invalid}
    assert {dict(r.headers)["error.type"] for r in dlq} == {b"not_utf8", b"empty_text"}
    wait_for(lambda: committed_total(kafka_bootstrap, f"{prefix}slm-{task}") == len(valid) + len(invalid), 30,
             what="offsets committed")
