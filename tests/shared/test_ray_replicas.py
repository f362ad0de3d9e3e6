"""Settings a Ray Serve replica gives its service (no Ray cluster needed)."""

from __future__ import annotations

from shared.kafka.settings import KafkaSettings
from shared.settings import ServiceSettings, ServingSettings


def _settings(**kafka) -> ServingSettings:
    return ServingSettings(service=ServiceSettings(), kafka=KafkaSettings(**kafka))


def test_each_replica_of_a_pod_is_a_static_member_of_its_own():
    settings = _settings(bootstrap="kafka:9092", group_instance_id="slm-sentiment-7d9f-abcde")
    first, second = settings.for_replica("r1x2").kafka, settings.for_replica("q9z8").kafka
    assert first.group_instance_id == "slm-sentiment-7d9f-abcde-r1x2"
    assert first.group_instance_id != second.group_instance_id
    # The result is a valid group.instance.id for the settings class.
    assert KafkaSettings(group_instance_id=first.group_instance_id).group_options()["group_instance_id"]


def test_without_static_membership_the_settings_are_unchanged():
    settings = _settings(bootstrap="kafka:9092")
    assert settings.for_replica("r1") == settings


def test_the_serve_config_args_are_validated_into_a_typed_model():
    import inspect

    import pytest
    from pydantic import ValidationError

    from shared.ray_replicas import AppArgs, build_app

    # Ray Serve converts a builder's args dict into the pydantic model its parameter is annotated with.
    assert inspect.signature(build_app).parameters["args"].annotation is AppArgs
    assert AppArgs.model_validate({"task": "sentiment", "partitions": 3}) == AppArgs(task="sentiment", partitions=3)
    with pytest.raises(ValidationError, match="unknown task 'sentimental'"):
        AppArgs(task="sentimental")
