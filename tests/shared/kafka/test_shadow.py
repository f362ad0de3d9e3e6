"""A shadow's topics, group and outgoing records, without a broker."""

from __future__ import annotations

import json
import logging

import pytest
from pydantic import ValidationError

from shared.errors import ConfigError
from shared.kafka.batch_plan import plan_batch
from shared.kafka.settings import KafkaSettings
from shared.kafka.shadow import own_records
from shared.kafka.topics import TaskTopics
from tests.support.fakes import FakeProcessor, Record


def test_a_shadow_reads_the_requests_in_its_own_group_and_writes_its_own_results():
    settings = KafkaSettings(bootstrap="b:9092", topic_prefix="p.", shadow=True)
    shadow, primary = TaskTopics.of("sentiment", settings), TaskTopics.of("sentiment", KafkaSettings(topic_prefix="p."))
    assert shadow.requests == primary.requests == "p.sentiment.requests"
    assert (shadow.results, primary.results) == ("p.sentiment.shadow.results", "p.sentiment.results")
    assert (shadow.group, primary.group) == ("slm-sentiment-shadow", "slm-sentiment")
    assert shadow.produced == {"p.sentiment.shadow.results"}
    assert shadow.all() == ["p.sentiment.requests", "p.sentiment.shadow.results"]
    assert shadow.consumer_group(None) == "slm-sentiment-shadow"
    assert shadow.consumer_group("team-shadow") == "team-shadow"


@pytest.mark.parametrize("group", ["slm-sentiment", "p.slm-sentiment", "team-a-classifier", "slm-sentiment-shadowy"])
def test_a_shadow_refuses_any_group_but_a_shadow_one(group):
    # The primary's default, a prefixed one and the chart's kafka.groupId alike: an inherited
    # SLM_KAFKA_GROUP_ID would put the shadow among the primary's members.
    with pytest.raises(ConfigError, match=f"SLM_KAFKA_GROUP_ID='{group}' does not end in '-shadow'"):
        TaskTopics("sentiment", shadow=True).consumer_group(group)
    assert TaskTopics("sentiment").consumer_group(group) == group
    assert TaskTopics("sentiment", shadow=True).consumer_group(f"{group}-shadow") == f"{group}-shadow"


def test_a_shadow_refuses_an_explicit_transactional_id_of_its_own_only_when_it_ends_in_shadow():
    base = {"bootstrap": "b:9092", "delivery": "exactly_once", "group_instance_id": "pod-0"}
    with pytest.raises(ValidationError, match="transactional_id='slm-sentiment-pod-0' .* does not end in '-shadow'"):
        KafkaSettings(**base, shadow=True, transactional_id="slm-sentiment-pod-0")
    # A primary's is its own business; a shadow's own ending in -shadow is kept as given.
    primary = KafkaSettings(**base, transactional_id="slm-sentiment-pod-0")
    assert primary.transactional_id_for("slm-sentiment") == "slm-sentiment-pod-0"
    shadow = KafkaSettings(**base, shadow=True, transactional_id="tx-shadow")
    assert shadow.transactional_id_for("slm-sentiment-shadow") == "tx-shadow"
    # Derived from the shadow's group: never the primary's.
    derived = KafkaSettings(**base, shadow=True).transactional_id_for("slm-sentiment-shadow")
    assert derived == "slm-sentiment-shadow-pod-0" != KafkaSettings(**base).transactional_id_for("slm-sentiment")


def test_a_shadow_needs_a_broker():
    with pytest.raises(ValidationError, match="shadow=true needs bootstrap"):
        KafkaSettings(shadow=True)


def _plan(topics: TaskTopics):
    records = [Record(json.dumps({"id": "a", "text": "up"}).encode(), 0, topic="p.sentiment.requests"),
               Record(json.dumps({"id": "b", "text": "unsure"}).encode(), 1, topic="p.sentiment.requests"),  # FakeProcessor: review
               Record(b"secret words, not json", 2, topic="p.sentiment.requests")]
    return plan_batch(records, FakeProcessor(), topics, max_bytes=1000)


def test_a_shadow_publishes_its_results_only_and_logs_dead_letters_without_their_value(caplog):
    shadow = TaskTopics("sentiment", "p.", shadow=True)
    plan = _plan(shadow)
    # The plan counts what the model decided, as the primary's does...
    assert (plan.results, plan.review, plan.dlq) == (2, 1, 1)
    with caplog.at_level(logging.INFO, logger="shared.kafka.shadow"):
        kept = own_records(plan.outgoing, shadow)
    # ...but only the results go out, to the shadow's topic, in order.
    assert [(out.topic, json.loads(out.value)["id"]) for out in kept] == [
        ("p.sentiment.shadow.results", "a"), ("p.sentiment.shadow.results", "b")]
    (line,) = [r.getMessage() for r in caplog.records]
    assert "source=p.sentiment.requests[0]@2 error_type=not_json" in line
    assert "secret" not in caplog.text


def test_a_primary_publishes_everything():
    primary = TaskTopics("sentiment", "p.")
    plan = _plan(primary)
    assert own_records(plan.outgoing, primary) == plan.outgoing
    assert {out.topic for out in plan.outgoing} == {"p.sentiment.results", "p.sentiment.review", "p.sentiment.dlq"}
