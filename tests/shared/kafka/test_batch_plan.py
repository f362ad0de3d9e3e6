"""DLQ decisions and output layout of one micro-batch, with a fake model."""

from __future__ import annotations

import json

from shared.kafka.batch_plan import plan_batch
from shared.kafka.topics import TaskTopics
from tests.support.fakes import FakeProcessor, Record

TOPICS = TaskTopics("sentiment")


def _value(text, **extra):
    return json.dumps({"text": text, **extra}).encode()


def test_valid_invalid_and_review_records_are_routed():
    records = [
        Record(_value("up", id="a"), 0, headers=[("correlation-id", b"c-a")]),
        Record(b"not json", 1),
        Record(_value("unsure", id="b"), 2),
        Record(b"\xff", 3),
        Record(_value("  "), 4),
    ]
    plan = plan_batch(records, FakeProcessor(), TOPICS, max_bytes=1000)
    assert (plan.results, plan.review, plan.dlq) == (2, 1, 3)
    assert plan.dlq_types == {"not_json": 1, "not_utf8": 1, "empty_text": 1}
    by_topic = {}
    for out in plan.outgoing:
        by_topic.setdefault(out.topic, []).append(out)
    assert [json.loads(o.value)["id"] for o in by_topic["sentiment.results"]] == ["a", "b"]
    assert [json.loads(o.value)["id"] for o in by_topic["sentiment.review"]] == ["b"]
    assert dict(by_topic["sentiment.results"][0].headers)["correlation-id"] == b"c-a"
    assert [o.value for o in by_topic["sentiment.dlq"]] == [b"not json", b"\xff", _value("  ")]
    assert all(o.key == b"k" for o in plan.outgoing)


def test_missing_id_falls_back_to_the_record_coordinates():
    plan = plan_batch([Record(_value("up"), 41, partition=2)], FakeProcessor(), TOPICS, max_bytes=1000)
    assert json.loads(plan.outgoing[0].value)["id"] == "sentiment.requests-2-41"


def test_a_failing_item_goes_to_the_dlq_and_the_rest_still_get_results():
    records = [Record(_value("up", id="a"), 0), Record(_value("boom", id="b"), 1), Record(_value("up", id="c"), 2)]
    plan = plan_batch(records, FakeProcessor(), TOPICS, max_bytes=1000)
    assert plan.results == 2
    assert plan.dlq_types == {"processing_error": 1}
    (dlq,) = [o for o in plan.outgoing if o.topic == "sentiment.dlq"]
    assert dlq.value == _value("boom", id="b")
    assert b"model exploded" in dict(dlq.headers)["error.message"]


def test_oversized_value_goes_to_the_dlq_with_original_bytes():
    big = _value("x" * 500)
    plan = plan_batch([Record(big, 0)], FakeProcessor(), TOPICS, max_bytes=100)
    assert plan.dlq_types == {"too_large": 1}
    assert plan.outgoing[0].value == big


def test_null_header_values_and_keyless_valueless_records_stay_producible():
    records = [Record(_value("up", id="a"), 0, headers=[("x-null", None)]), Record(None, 1, key=None)]
    plan = plan_batch(records, FakeProcessor(), TOPICS, max_bytes=1000)
    (result,) = [o for o in plan.outgoing if o.topic == "sentiment.results"]
    (dead,) = [o for o in plan.outgoing if o.topic == "sentiment.dlq"]
    assert dict(result.headers)["x-null"] == b""
    assert dead.topic == "sentiment.dlq" and dead.key == b"" and dead.value is None
    assert dict(dead.headers)["error.type"] == b"empty_value"


def test_an_oversized_value_is_cut_for_the_dlq_and_says_how_large_it_was():
    big = _value("x" * 5000)
    plan = plan_batch([Record(big, 7)], FakeProcessor(), TOPICS, max_bytes=100, dlq_max_value_bytes=1000)
    (dead,) = plan.outgoing
    headers = dict(dead.headers)
    assert dead.value == big[:1000]
    assert headers["error.type"] == b"too_large"
    assert headers["original.size"] == str(len(big)).encode() and headers["original.truncated"] == b"true"
    assert headers["source.offset"] == b"7"
    assert (plan.dlq, plan.dlq_types) == (1, {"too_large": 1})


def test_a_processing_policy_that_declines_raises_and_dead_letters_nothing():
    import pytest

    seen = []

    def keep_for_retry(exc, record, logger):
        seen.append((type(exc).__name__, record.offset))
        return False

    records = [Record(_value("up", id="a"), 0), Record(_value("boom", id="b"), 1)]
    with pytest.raises(RuntimeError, match="model exploded"):
        plan_batch(records, FakeProcessor(), TOPICS, max_bytes=1000, on_processing_error=keep_for_retry)
    assert seen == [("RuntimeError", 1)]
