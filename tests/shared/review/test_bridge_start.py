"""What a starting bridge takes from ``<task>.feedback``: what it published, and how far back a missing verdict is
still missing (the topic's retention), or no limit when the broker will not say."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import pytest

from shared.kafka.settings import KafkaSettings
from shared.kafka.topics import TopicConfigUnknown
from shared.review import bridge as bridge_module
from shared.review.bridge import ReviewBridge
from shared.review.settings import ReviewSettings


@pytest.fixture
def bridge():
    review = ReviewSettings(label_studio_url="http://127.0.0.1:9", label_studio_token="t")
    started = ReviewBridge("sentiment", ["bearish", "bullish", "neutral"], entities=False,
                           kafka=KafkaSettings(bootstrap="127.0.0.1:9"), review=review, port=9)
    yield started
    started.close()


def _retention(monkeypatch, answer) -> None:
    def retention(settings, topic):
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(bridge_module, "read_topic", lambda *args, **kwargs: [])
    monkeypatch.setattr(bridge_module, "topic_retention", retention)


def test_the_oldest_verdict_still_missing_is_one_retention_ago(bridge, monkeypatch):
    _retention(monkeypatch, timedelta(days=7))
    before = datetime.now(timezone.utc)
    published, oldest = bridge._published_verdicts()
    assert published == {}
    assert before - timedelta(days=7) <= oldest <= datetime.now(timezone.utc) - timedelta(days=7)


@pytest.mark.parametrize("retention", [None, timedelta.max])
def test_a_topic_that_keeps_records_for_ever_sets_no_limit(bridge, monkeypatch, retention):
    _retention(monkeypatch, retention)
    assert bridge._published_verdicts() == ({}, None)


def test_a_broker_that_will_not_describe_the_topic_sets_no_limit_and_says_so(bridge, monkeypatch, caplog):
    _retention(monkeypatch, TopicConfigUnknown("the broker described no retention of sentiment.feedback"))
    with caplog.at_level(logging.WARNING, logger="shared.review.bridge"):
        assert bridge._published_verdicts() == ({}, None)
    assert "publishes every verdict missing from the topic" in caplog.text
