"""How long a topic keeps a record, as the broker describes it (what the review bridge's first sweep is bounded by)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from kafka.admin import KafkaAdminClient, NewTopic

from shared.kafka.settings import KafkaSettings
from shared.kafka.topics import TopicConfigUnknown, topic_retention

pytestmark = pytest.mark.integration


def test_retention_by_age_or_none_when_the_topic_deletes_nothing_by_age(kafka_bootstrap, topic_prefix):
    configs = {"hour": {"retention.ms": "3600000"}, "forever": {"retention.ms": "-1"},
               "compacted": {"cleanup.policy": "compact", "retention.ms": "3600000"},
               "both": {"cleanup.policy": "compact,delete", "retention.ms": "7200000"},
               "beyond_any_calendar": {"retention.ms": str(2**63 - 1)}}
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(f"{topic_prefix}{name}", 1, 1, topic_configs=config)
                             for name, config in configs.items()])
    finally:
        admin.close()
    settings = KafkaSettings(bootstrap=kafka_bootstrap)
    retention = {name: topic_retention(settings, f"{topic_prefix}{name}") for name in configs}
    assert retention == {"hour": timedelta(hours=1), "forever": None, "compacted": None,
                         "both": timedelta(hours=2), "beyond_any_calendar": None}
    # What the broker answers for a topic it does not have, and for one this principal may not describe.
    with pytest.raises(TopicConfigUnknown, match="absent, or DescribeConfigs"):
        topic_retention(settings, f"{topic_prefix}absent")
