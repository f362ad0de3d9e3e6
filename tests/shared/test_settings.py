"""Settings classes: values that cannot work are refused with the value named."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.settings import KafkaSettings


def test_kafka_group_options_carry_static_membership_and_timeouts(monkeypatch):
    monkeypatch.setenv("SLM_KAFKA_GROUP_INSTANCE_ID", "sentiment-0")
    monkeypatch.setenv("SLM_KAFKA_SESSION_TIMEOUT_MS", "12000")
    monkeypatch.setenv("SLM_KAFKA_HEARTBEAT_INTERVAL_MS", "1000")
    assert KafkaSettings().group_options() == {"group_instance_id": "sentiment-0", "session_timeout_ms": 12000,
                                               "heartbeat_interval_ms": 1000, "max_poll_interval_ms": 300000}


def test_a_heartbeat_slower_than_a_third_of_the_session_is_refused():
    with pytest.raises(ValidationError, match="heartbeat_interval_ms=5000"):
        KafkaSettings(session_timeout_ms=12000, heartbeat_interval_ms=5000)


@pytest.mark.parametrize("member", ["", "pod name", "ü", "x" * 250])
def test_a_group_instance_id_kafka_would_refuse_is_refused_here(member):
    with pytest.raises(ValidationError):
        KafkaSettings(group_instance_id=member)


def test_clients_back_off_at_most_a_second_between_reconnections_by_default():
    assert KafkaSettings(bootstrap="b:9092").client_options()["reconnect_backoff_max_ms"] == 1000
