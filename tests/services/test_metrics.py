"""``/metrics`` of a running service: the task's ``slm_*`` series, in Prometheus text."""

from __future__ import annotations

import json

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.kafka import TaskTopics
from tests.support.kafka_io import drain, produce
from tests.support.processes import ServiceProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of ``/metrics``: (name, labels) -> value."""
    response = httpx.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def total(samples: dict, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(value for (sample, sample_labels), value in samples.items() if sample == name and wanted <= sample_labels)


def test_metrics_count_rest_and_kafka_requests_results_dlq_and_predictions(quick_model_dir, tmp_path,
                                                                           kafka_bootstrap, topic_prefix):
    topics = TaskTopics("sentiment", topic_prefix)
    env = {"OTEL_SDK_DISABLED": "false", "SLM_KAFKA_BOOTSTRAP": kafka_bootstrap,
           "SLM_KAFKA_TOPIC_PREFIX": topic_prefix, "SLM_KAFKA_GROUP_ID": f"{topic_prefix}slm-sentiment"}
    service = ServiceProcess("sentiment", quick_model_dir, tmp_path / "serve.log", env=env).wait_ready()
    try:
        valid = [(None, json.dumps({"id": f"m{i}", "text": f"Stock {i} rallies"}).encode(), []) for i in range(30)]
        produce(kafka_bootstrap, topics.requests, valid + [(None, b"not json", []), (None, b'{"id": "x"}', [])])
        results = drain(kafka_bootstrap, topics.results, until=lambda r: len(r) >= 30)
        assert len(results) == 30
        rest = httpx.post(f"{service.url}/predict", json={"items": [{"text": "Oil slips"}, {"text": "Gold rallies"},
                                                                    {"text": "Banks steady"}]}, timeout=30)
        assert rest.status_code == 200
        assert httpx.post(f"{service.url}/predict", json={"items": [{"text": " "}]}, timeout=30).status_code == 422
        # The loop counts a batch after committing it, a moment after its results are readable.
        wait_for(lambda: total(scrape(service.url), "slm_requests_total", path="kafka") == 32, timeout=30,
                 what="the Kafka batches counted")
        samples = scrape(service.url)
    finally:
        assert service.terminate() == 0

    model = json.loads(results[0].value)["model"]
    identity = {"task": "sentiment", "model": model, "role": "primary"}
    assert total(samples, "slm_requests_total", path="kafka", **identity) == 32
    assert total(samples, "slm_requests_total", path="rest", **identity) == 3
    assert total(samples, "slm_results_total", path="kafka", **identity) == 30
    assert total(samples, "slm_results_total", path="rest", **identity) == 3
    assert total(samples, "slm_dlq_total", error_type="not_json", **identity) == 1
    assert total(samples, "slm_dlq_total", error_type="schema", **identity) == 1
    kafka_review = sum(1 for record in results if json.loads(record.value)["review"])
    assert total(samples, "slm_review_total", path="kafka", **identity) == kafka_review
    # Every answer, whichever path it took, is in the score histogram and the label counts.
    assert total(samples, "slm_score_count", **identity) == 33
    assert total(samples, "slm_predictions_total", **identity) == 33
    labels = [json.loads(record.value)["label"] for record in results] + [r["label"] for r in rest.json()]
    for label in set(labels):
        assert total(samples, "slm_predictions_total", label=label, **identity) == labels.count(label)
    assert total(samples, "slm_request_latency_milliseconds_count", path="kafka", **identity) == 30
    assert total(samples, "slm_request_latency_milliseconds_count", path="rest", **identity) == 3
    assert total(samples, "slm_cache_hits_total", **identity) + total(samples, "slm_cache_misses_total",
                                                                         **identity) == 33
    lag_partitions = {dict(key[1])["partition"] for key in samples if key[0] == "slm_kafka_lag"}
    assert lag_partitions and lag_partitions <= {str(p) for p in range(64)}
    assert all(dict(labels_)["topic"] == topics.requests for (name, labels_) in samples if name == "slm_kafka_lag")
    # BentoML's own request series are off (shared/bento.py): the answers by status are ours.
    assert not [name for name, _ in samples if name.startswith("bentoml_")]
    answers = {"task": "sentiment", "route": "/predict"}
    assert total(samples, "slm_http_responses_total", status="200", **answers) == 1
    assert total(samples, "slm_http_responses_total", status="422", **answers) == 1
