"""Exactly once through crashes: the real service (server and worker) SIGKILLed mid-stream five
times over 20,000 requests; a read_committed reader sees each answer and each review once."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from shared.kafka import TaskTopics
from tests.support.kafka_io import committed_total, drain, produce
from tests.support.processes import ServiceProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REQUESTS = 20_000
KILLS = 5


def _committed(bootstrap: str, group: str) -> int:
    """The group's committed total; -1 while the coordinator is busy (the broker is loaded here)."""
    from kafka.errors import KafkaError

    try:
        return committed_total(bootstrap, group)
    except KafkaError as exc:
        if getattr(exc, "retriable", False):
            return -1
        raise


def _counts(records) -> Counter:
    return Counter(json.loads(r.value)["id"] for r in records)


def test_five_kills_over_20000_requests_leave_each_result_and_review_exactly_once(
        quick_model_dir, tmp_path, kafka_bootstrap, topic_prefix):
    topics = TaskTopics("sentiment", topic_prefix)
    group = f"{topic_prefix}slm-sentiment"
    env = {"SLM_KAFKA_BOOTSTRAP": kafka_bootstrap, "SLM_KAFKA_TOPIC_PREFIX": topic_prefix, "SLM_KAFKA_GROUP_ID": group,
           "SLM_KAFKA_DELIVERY": "exactly_once", "SLM_KAFKA_GROUP_INSTANCE_ID": "sentiment-0",
           "SLM_KAFKA_SESSION_TIMEOUT_MS": "90000", "SLM_REVIEW_THRESHOLD": "0.9"}
    produce(kafka_bootstrap, topics.requests,
            [(None, json.dumps({"id": f"{topic_prefix}{i}", "text": f"Shares of company {i} {word} after earnings"})
              .encode(), []) for i, word in zip(range(REQUESTS), ["rally", "slump", "hold", "drift"] * REQUESTS)])
    killed_at = []
    for kill in range(KILLS):
        service = ServiceProcess("sentiment", quick_model_dir, tmp_path / f"serve-{kill}.log", env=env).wait_ready()
        # Kill once this instance has committed some work of its own, mid-stream.
        target = (kill + 1) * REQUESTS // (KILLS + 2)
        try:
            wait_for(lambda: _committed(kafka_bootstrap, group) >= target, 300, interval=0.5,
                     what=f"{target} requests committed")
        finally:
            service.kill()
        killed_at.append(_committed(kafka_bootstrap, group))
    assert all(done < REQUESTS for done in killed_at), f"every kill must land mid-stream: {killed_at}"
    last = ServiceProcess("sentiment", quick_model_dir, tmp_path / "serve-last.log", env=env).wait_ready()
    try:
        wait_for(lambda: _committed(kafka_bootstrap, group) == REQUESTS, 600, interval=1,
                 what="every request committed")
    finally:
        assert last.terminate() == 0
    expected = {f"{topic_prefix}{i}" for i in range(REQUESTS)}
    results = _counts(drain(kafka_bootstrap, topics.results, until=lambda r: len(r) >= REQUESTS,
                            isolation_level="read_committed"))
    assert set(results) == expected
    assert max(results.values()) == 1, results.most_common(3)
    review = _counts(drain(kafka_bootstrap, topics.review, until=lambda r: False, timeout=10,
                           isolation_level="read_committed"))
    assert review and set(review) <= expected
    assert max(review.values()) == 1, review.most_common(3)
    everything = sum(_counts(drain(kafka_bootstrap, topics.results, until=lambda r: len(r) > REQUESTS,
                                   timeout=20)).values())
    print(f"\nkills at committed offsets {killed_at}; records in the results log {everything} "
          f"(aborted ones included), read_committed {sum(results.values())}; review {len(review)}")
