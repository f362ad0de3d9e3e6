"""The consumer loop against the real broker: routing, offsets, at-least-once."""

from __future__ import annotations

import json

import pytest

from shared.kafka import TaskConsumerLoop, TaskTopics
from shared.kafka.settings import KafkaSettings
from shared.processors import ClassificationProcessor
from shared.runtime import OnnxTextClassifier
from tests.support.kafka_io import committed_total, drain, produce
from tests.support.processes import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def processor(quick_model_dir):
    return ClassificationProcessor("sentiment", OnnxTextClassifier(quick_model_dir, intra_op_threads=1))


def _settings(bootstrap: str, prefix: str, **overrides) -> KafkaSettings:
    return KafkaSettings(bootstrap=bootstrap, topic_prefix=prefix, group_id=f"{prefix}slm-sentiment",
                         max_batch=16, **overrides)


def test_valid_and_invalid_messages_are_answered_and_offsets_committed(kafka_bootstrap, topic_prefix, processor):
    settings = _settings(kafka_bootstrap, topic_prefix)
    topics = TaskTopics("sentiment", topic_prefix)
    valid = [(f"k{i}".encode(), json.dumps({"id": f"v{i}", "text": f"Company {i} shares jump after earnings"}).encode(),
              [("correlation-id", f"c{i}".encode()),
               ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")])
             for i in range(40)]
    invalid = [(b"bad1", b"\xff\xfe", []), (b"bad2", b"{nope", []), (b"bad3", b'{"text": ""}', []),
               (b"bad4", b'{"id": "no-text"}', []), (b"bad5", json.dumps({"text": "x" * 70_000}).encode(), [])]
    loop = TaskConsumerLoop(processor, settings)
    loop.start()
    try:
        assert loop.wait_ready(60), "consumer never joined its group"
        produce(kafka_bootstrap, topics.requests, valid + invalid)
        results = drain(kafka_bootstrap, topics.results, until=lambda r: len(r) >= len(valid))
        dlq = drain(kafka_bootstrap, topics.dlq, until=lambda r: len(r) >= len(invalid))
        end = sum(1 for _ in valid + invalid)
        wait_for(lambda: committed_total(kafka_bootstrap, loop.group_id) == end, 30,
                 what="offsets committed up to the end of the topic")
    finally:
        loop.stop()
    # One consumer in a new group: one rebalance. A second one means it joined before the
    # topic's metadata arrived, which kafka-python 3.0 can leave hanging (see loop.py).
    assert loop.assignments == 1
    assert sorted(json.loads(r.value)["id"] for r in results) == sorted(f"v{i}" for i in range(40))
    for record in results:
        body = json.loads(record.value)
        headers = dict(record.headers)
        assert record.key == f"k{body['id'][1:]}".encode()
        assert headers["correlation-id"] == f"c{body['id'][1:]}".encode()
        assert headers["traceparent"].startswith(b"00-0af7651916cd43dd8448eb211c80319c")
        assert body["label"] in {"bearish", "bullish", "neutral"}
        assert body["model"] == processor.model_id
    assert sorted(r.value for r in dlq) == sorted(v for _, v, _ in invalid)
    reasons = {dict(r.headers)["error.type"].decode() for r in dlq}
    assert reasons == {"not_utf8", "not_json", "empty_text", "schema", "too_large"}
    for record in dlq:
        headers = dict(record.headers)
        assert headers["source.topic"] == topics.requests.encode()
        assert int(headers["source.offset"]) >= 0
    review = drain(kafka_bootstrap, topics.review, until=lambda r: False, timeout=3)
    assert len(review) == sum(1 for r in results if json.loads(r.value)["review"])


def test_a_restarted_consumer_resumes_from_the_committed_offset(kafka_bootstrap, topic_prefix, processor):
    settings = _settings(kafka_bootstrap, topic_prefix)
    topics = TaskTopics("sentiment", topic_prefix)
    first = [(None, json.dumps({"id": f"a{i}", "text": "Bank cuts outlook"}).encode(), []) for i in range(20)]
    second = [(None, json.dumps({"id": f"b{i}", "text": "Retailer beats forecasts"}).encode(), []) for i in range(20)]
    loop = TaskConsumerLoop(processor, settings)
    loop.start()
    assert loop.wait_ready(60)
    produce(kafka_bootstrap, topics.requests, first)
    drain(kafka_bootstrap, topics.results, until=lambda r: len(r) >= 20)
    wait_for(lambda: committed_total(kafka_bootstrap, loop.group_id) == 20, 30, what="first commit")
    loop.stop()
    produce(kafka_bootstrap, topics.requests, second)  # while no consumer runs
    loop = TaskConsumerLoop(processor, settings)
    loop.start()
    try:
        results = drain(kafka_bootstrap, topics.results, until=lambda r: len(r) >= 40)
        wait_for(lambda: committed_total(kafka_bootstrap, loop.group_id) == 40, 30, what="second commit")
    finally:
        loop.stop()
    ids = [json.loads(r.value)["id"] for r in results]
    # A graceful stop commits everything, so nothing is processed twice here.
    assert sorted(ids) == sorted([f"a{i}" for i in range(20)] + [f"b{i}" for i in range(20)])
