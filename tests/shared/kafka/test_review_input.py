"""Review records carry the request's input (SLM_REVIEW_INCLUDE_INPUT), results stay as they were."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import pytest

from shared.kafka.batch_plan import plan_batch, review_value
from shared.kafka.topics import TaskTopics
from shared.schemas import TaskRequestV1
from shared.settings import ServiceSettings
from tests.support.fakes import FakeProcessor

TOPICS = TaskTopics("sentiment")


@dataclass
class Record:
    value: bytes
    offset: int
    key: bytes = b"k"
    headers: list = field(default_factory=list)
    topic: str = "sentiment.requests"
    partition: int = 0


def _by_topic(plan) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for record in plan.outgoing:
        out.setdefault(record.topic, []).append(json.loads(record.value))
    return out


def _records() -> list[Record]:
    return [Record(json.dumps({"id": "a", "text": "unsure about Zürich", "fields": {"amount": 20.5, "vip": True}}).encode(), 0),
            Record(json.dumps({"id": "b", "text": "up"}).encode(), 1)]


def test_a_review_record_is_the_result_plus_the_input():
    by_topic = _by_topic(plan_batch(_records(), FakeProcessor(), TOPICS, max_bytes=1000))
    (result_a, result_b), (review,) = by_topic["sentiment.results"], by_topic["sentiment.review"]
    assert "input" not in result_a and "input" not in result_b
    assert review["input"] == {"text": "unsure about Zürich", "fields": {"amount": 20.5, "vip": True}}
    assert {k: v for k, v in review.items() if k != "input"} == result_a


def test_without_input_a_review_record_is_the_result_byte_for_byte():
    plan = plan_batch(_records(), FakeProcessor(), TOPICS, max_bytes=1000, review_input=False)
    (result, _), (review,) = ([r for r in plan.outgoing if r.topic == t] for t in ("sentiment.results", "sentiment.review"))
    assert review.value == result.value
    assert b"Z\xc3\xbcrich" not in review.value


def test_the_result_bytes_are_kept_exactly_when_the_input_is_added():
    result = b'{"id":"a","score":0.1}'
    value = review_value(result, TaskRequestV1(text='quote " and \\ and \n newline', fields={}))
    assert value.startswith(result[:-1] + b',"input":')
    assert json.loads(value)["input"]["text"] == 'quote " and \\ and \n newline'


def test_a_review_copy_too_large_with_its_input_goes_without_it_and_is_counted(caplog):
    # The request and its result fit the limit, the result with the request's text appended does not: the
    # producer would refuse that copy and the loop dead-letter a request that was answered.
    text = "unsure " + "secret-words-xyz " * 30
    request = json.dumps({"id": "big", "text": text}).encode()
    limit = len(request) + 20
    with caplog.at_level(logging.DEBUG):
        plan = plan_batch([Record(request, 0), *_records()], FakeProcessor(), TOPICS, max_bytes=limit)
    assert (plan.results, plan.review, plan.dlq, plan.review_without_input) == (3, 2, 0, 1)
    results = {json.loads(r.value)["id"]: r.value for r in plan.outgoing if r.topic == "sentiment.results"}
    reviews = {json.loads(r.value)["id"]: r.value for r in plan.outgoing if r.topic == "sentiment.review"}
    assert len(results["big"]) <= limit and len(review_value(results["big"], TaskRequestV1(text=text))) > limit
    assert reviews["big"] == results["big"]                # the result's bytes alone, as without input
    assert "input" in json.loads(reviews["a"])             # a copy that fits keeps its input
    assert all(len(r.value) <= limit for r in plan.outgoing)
    assert "review_without_input=1" in caplog.text and "secret-words-xyz" not in caplog.text


def test_the_setting_reads_slm_review_include_input(monkeypatch):
    assert ServiceSettings().review_include_input is True
    monkeypatch.setenv("SLM_REVIEW_INCLUDE_INPUT", "false")
    assert ServiceSettings().review_include_input is False


def test_planning_a_batch_logs_no_input_text(caplog):
    records = [Record(json.dumps({"id": "c", "text": "boom secret-words-xyz"}).encode(), 0), *_records()]
    with caplog.at_level(logging.DEBUG):
        plan_batch(records, FakeProcessor(), TOPICS, max_bytes=1000)
    assert caplog.records, "the failing batch is expected to log its retry"
    assert "secret-words-xyz" not in caplog.text and "Zürich" not in caplog.text


@pytest.mark.integration
@pytest.mark.parametrize("include", [True, False])
def test_the_served_task_gives_its_loop_the_setting(quick_model_dir, kafka_bootstrap, topic_prefix, include):
    """SLM_REVIEW_INCLUDE_INPUT reaches the Kafka loop a service runs (ServedTask), on the real broker."""
    from shared.kafka.settings import KafkaSettings
    from shared.serving import ServedTask, served_task
    from shared.settings import ServingSettings
    from tests.support.kafka_io import drain, produce

    serving = ServingSettings(
        service=ServiceSettings(model_dir=quick_model_dir, review_threshold=1.0, review_include_input=include,
                                onnx_threads=1),
        kafka=KafkaSettings(bootstrap=kafka_bootstrap, topic_prefix=topic_prefix, group_id=f"{topic_prefix}g"))
    served = ServedTask("sentiment", serving)
    try:
        assert served.loop.wait_ready(60)
        produce(kafka_bootstrap, TaskTopics("sentiment", topic_prefix).requests,
                [(None, json.dumps({"id": "r1", "text": "Shares of Acme drift"}).encode(), [])])
        (review,) = drain(kafka_bootstrap, TaskTopics("sentiment", topic_prefix).review, until=lambda r: len(r) >= 1)
    finally:
        served.close()  # the loop, the REST batcher and the registry entry: nothing left for the next run
    assert served_task("sentiment") is None
    value = json.loads(review.value)
    assert value["id"] == "r1"
    assert value.get("input") == ({"text": "Shares of Acme drift", "fields": {}} if include else None)
