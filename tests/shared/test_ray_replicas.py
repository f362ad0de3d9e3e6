"""Settings a Ray Serve replica gives its service (no Ray cluster needed)."""

from __future__ import annotations

from shared.ray_replicas import replica_env
from shared.settings import KafkaSettings


def test_each_replica_of_a_pod_is_a_static_member_of_its_own():
    env = {"SLM_KAFKA_BOOTSTRAP": "kafka:9092", "SLM_KAFKA_GROUP_INSTANCE_ID": "slm-sentiment-7d9f-abcde"}
    first, second = replica_env(env, "r1x2"), replica_env(env, "q9z8")
    assert first["SLM_KAFKA_GROUP_INSTANCE_ID"] == "slm-sentiment-7d9f-abcde-r1x2"
    assert first["SLM_KAFKA_GROUP_INSTANCE_ID"] != second["SLM_KAFKA_GROUP_INSTANCE_ID"]
    # The result is a valid group.instance.id for the settings class.
    assert KafkaSettings(group_instance_id=first["SLM_KAFKA_GROUP_INSTANCE_ID"]).group_options()["group_instance_id"]


def test_without_static_membership_the_environment_is_unchanged():
    env = {"SLM_KAFKA_BOOTSTRAP": "kafka:9092"}
    assert replica_env(env, "r1") == env
