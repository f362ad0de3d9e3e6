"""The sentiment service consuming a real broker: contract, crash recovery, graceful stop."""

from __future__ import annotations

import json
import time

import pytest
from shared.kafka import TaskTopics
from tests.support.kafka_io import committed_total, drain, produce
from tests.support.processes import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _start(model_dir, log_dir, bootstrap, prefix, **extra_env) -> ServiceProcess:
    env = {"SLM_KAFKA_BOOTSTRAP": bootstrap, "SLM_KAFKA_TOPIC_PREFIX": prefix,
           "SLM_KAFKA_GROUP_ID": f"{prefix}slm-sentiment", "SLM_KAFKA_MAX_BATCH": "16", **extra_env}
    return ServiceProcess("sentiment", model_dir, log_dir / f"serve-{prefix}{len(list(log_dir.iterdir()))}.log",
                          env=env).wait_ready()


def _requests(prefix: str, n: int) -> list:
    return [(f"key-{i}".encode(), json.dumps({"id": f"{prefix}{i}", "text": f"Stock {i} rallies on upgrade"}).encode(),
             [("correlation-id", f"corr-{i}".encode())]) for i in range(n)]


def _ids(records) -> set[str]:
    return {json.loads(r.value)["id"] for r in records}


def test_service_answers_kafka_requests_with_the_contract(quick_model_dir, tmp_path, kafka_bootstrap, topic_prefix):
    topics = TaskTopics("sentiment", topic_prefix)
    service = _start(quick_model_dir, tmp_path, kafka_bootstrap, topic_prefix)
    try:
        requests = _requests(topic_prefix, 30)
        produce(kafka_bootstrap, topics.requests, requests + [(b"bad", b"not json at all", [("correlation-id", b"x")])])
        results = drain(kafka_bootstrap, topics.results, until=lambda r: len(_ids(r)) >= 30)
        dlq = drain(kafka_bootstrap, topics.dlq, until=lambda r: len(r) >= 1)
    finally:
        assert service.terminate() == 0
    assert _ids(results) == {f"{topic_prefix}{i}" for i in range(30)}
    first = json.loads(results[0].value)
    assert set(first) >= {"id", "task", "model", "label", "score", "scores", "review", "received_at", "latency_ms"}
    assert all(dict(r.headers)["correlation-id"] == r.key.replace(b"key", b"corr") for r in results)
    (dead,) = dlq
    assert dead.value == b"not json at all"
    assert dict(dead.headers)["error.type"] == b"not_json"
    assert dict(dead.headers)["correlation-id"] == b"x"


def test_killed_service_loses_nothing_and_answers_soon_after_restart(quick_model_dir, tmp_path, kafka_bootstrap,
                                                                     topic_prefix):
    topics = TaskTopics("sentiment", topic_prefix)
    expected = {f"{topic_prefix}{i}" for i in range(400)}
    member = {"SLM_KAFKA_GROUP_INSTANCE_ID": "sentiment-0", "SLM_KAFKA_SESSION_TIMEOUT_MS": "90000"}
    service = _start(quick_model_dir, tmp_path, kafka_bootstrap, topic_prefix, **member)
    produce(kafka_bootstrap, topics.requests, _requests(topic_prefix, 400))
    partial = drain(kafka_bootstrap, topics.results, until=lambda r: len(r) >= 48)
    service.kill()  # mid-stream: no shutdown hook, no final commit, no LeaveGroup
    before = len(drain(kafka_bootstrap, topics.results, until=lambda r: False, timeout=2))
    assert 48 <= len(_ids(partial)) < 400, "the kill must land mid-stream for this test to mean anything"
    restarted_at = time.monotonic()
    restarted = _start(quick_model_dir, tmp_path, kafka_bootstrap, topic_prefix, **member)
    ready_at = time.monotonic()
    try:
        drain(kafka_bootstrap, topics.results, until=lambda r: len(r) > before, timeout=120)
        first_new_s, recovery_s = time.monotonic() - ready_at, time.monotonic() - restarted_at
        results = drain(kafka_bootstrap, topics.results, until=lambda r: _ids(r) >= expected)
    finally:
        assert restarted.terminate() == 0
    assert _ids(results) == expected
    # Static membership: the restart takes its partitions back at once (a dynamic member waited
    # out its predecessor's session, 45 s by default, before answering).
    assert first_new_s < 10, first_new_s
    # Process start, model load and the first answer, well within the 90 s session a restarted
    # dynamic member would wait out (45 s with kafka-python's default).
    assert recovery_s < 45, recovery_s


def test_sigterm_finishes_the_batch_commits_and_exits(quick_model_dir, tmp_path, kafka_bootstrap, topic_prefix):
    topics = TaskTopics("sentiment", topic_prefix)
    group = f"{topic_prefix}slm-sentiment"
    service = _start(quick_model_dir, tmp_path, kafka_bootstrap, topic_prefix)
    produce(kafka_bootstrap, topics.requests, _requests(topic_prefix, 300))
    drain(kafka_bootstrap, topics.results, until=lambda r: len(r) >= 32)
    assert service.terminate() == 0
    results = drain(kafka_bootstrap, topics.results, until=lambda r: False, timeout=5)
    committed = committed_total(kafka_bootstrap, group)
    # Every result published was committed, and every committed request has its result: no gap, no replay.
    assert len(results) == len(_ids(results)) == committed
    assert 32 <= committed <= 300
    assert "consumer loop stopped task=sentiment" in service.log()
