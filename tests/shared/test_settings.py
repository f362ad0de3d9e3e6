"""Settings classes: values that cannot work are refused with the value named."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.kafka.settings import KafkaSettings


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


def test_an_unknown_slm_name_is_reported_with_the_closest_known_one(caplog):
    from shared.settings import warn_unknown_settings

    environ = {"SLM_KAFKA_BOOTSRAP": "b:9092", "SLM_MAX_BATCH_SIZE": "8", "SLM_TEST_KAFKA_BOOTSTRAP": "b:9092",
               "SLM_ZZZ": "1", "PATH": "/bin"}
    with caplog.at_level("WARNING", logger="shared.settings"):
        unknown = warn_unknown_settings(environ)
    assert unknown == {"SLM_KAFKA_BOOTSRAP": "SLM_KAFKA_BOOTSTRAP", "SLM_ZZZ": None}
    assert "unknown setting SLM_KAFKA_BOOTSRAP is ignored; did you mean SLM_KAFKA_BOOTSTRAP?" in caplog.text


def test_a_child_process_environment_is_rendered_from_the_settings():
    from shared.settings import ServiceSettings, ServingSettings

    settings = ServingSettings(service=ServiceSettings(max_batch_size=8, log_inputs=True),
                               kafka=KafkaSettings(bootstrap="b:9092", sasl_password="secret"))
    env = settings.environment({"PATH": "/bin", "SLM_MAX_BATCH_SIZE": "99", "SLM_REVIEW_THRESHOLD": "0.7"})
    assert env == {"PATH": "/bin", "SLM_MAX_BATCH_SIZE": "8", "SLM_LOG_INPUTS": "true",
                   "SLM_KAFKA_BOOTSTRAP": "b:9092", "SLM_KAFKA_SASL_PASSWORD": "secret"}


def test_a_replaced_value_is_validated_and_the_environment_not_read_again(monkeypatch):
    from shared.settings import ServiceSettings, ServingSettings

    settings = ServingSettings(service=ServiceSettings(), kafka=KafkaSettings())
    monkeypatch.setenv("SLM_CACHE_SIZE", "7")
    changed = settings.replace(service={"onnx_threads": 2})
    assert (changed.service.onnx_threads, changed.service.cache_size) == (2, settings.service.cache_size)
    with pytest.raises(ValidationError, match="onnx_threads"):
        settings.replace(service={"onnx_threads": -1})


def test_every_setting_survives_the_trip_through_a_child_processes_environment(monkeypatch, tmp_path):
    """What ``slm serve`` renders for the BentoML process must read back as the same settings:
    a tuple such as ``open_paths`` goes as JSON (its ``str()`` failed the server's start)."""
    from shared.settings import ServiceSettings, ServingSettings

    settings = ServingSettings(
        service=ServiceSettings(api_keys_file=tmp_path / "keys", open_paths=("/readyz", "/metrics")),
        kafka=KafkaSettings(bootstrap="b:9092", delivery="exactly_once", group_instance_id="sentiment-0"))
    replaced = settings.replace(service={"max_batch_size": 8})
    for name, value in replaced.environment({}).items():
        monkeypatch.setenv(name, value)
    assert ServingSettings.from_env() == replaced
    assert replaced.kafka.transactional_id_for("slm-sentiment") == "slm-sentiment-sentiment-0"


def test_a_client_certificate_needs_its_key_and_oauthbearer_its_token_file(tmp_path):
    with pytest.raises(ValidationError, match="ssl_certfile and ssl_keyfile go together"):
        KafkaSettings(bootstrap="b:9093", security_protocol="SSL", ssl_certfile="client.crt")
    with pytest.raises(ValidationError, match="OAUTHBEARER needs sasl_oauth_token_file"):
        KafkaSettings(bootstrap="b:9093", security_protocol="SASL_SSL", sasl_mechanism="OAUTHBEARER")
    options = KafkaSettings(bootstrap="b:9093", security_protocol="SSL", ssl_certfile="c.crt", ssl_keyfile="c.key",
                            ssl_password="pw").client_options()
    assert (options["ssl_certfile"], options["ssl_keyfile"], options["ssl_password"]) == ("c.crt", "c.key", "pw")
    token = tmp_path / "token"
    token.write_text("eyJhbGciOi.first\n")
    provider = KafkaSettings(bootstrap="b:9093", security_protocol="SASL_SSL", sasl_mechanism="OAUTHBEARER",
                             sasl_oauth_token_file=str(token)).client_options()["sasl_oauth_token_provider"]
    assert provider.token() == "eyJhbGciOi.first"
    token.write_text("eyJhbGciOi.renewed")  # read again for every new connection
    assert provider.token() == "eyJhbGciOi.renewed"


def test_a_local_server_is_a_static_member_named_by_its_host_and_address():
    from shared.settings import ServingSettings, local_instance_id

    settings = ServingSettings.from_env(kafka={"bootstrap": "127.0.0.1:9092"}).for_local_server("127.0.0.1", 3000)
    member = settings.kafka.group_instance_id
    assert member == local_instance_id("127.0.0.1", 3000)
    assert member != local_instance_id("127.0.0.1", 3001)  # another server on this host
    assert KafkaSettings(group_instance_id=member).group_options()["group_instance_id"] == member
    assert local_instance_id("::1", 3000, hostname="node 1") == "node_1-__1-3000"  # what a member id may hold


def test_an_instance_id_given_and_a_server_without_kafka_are_left_as_they_are():
    from shared.settings import ServingSettings

    given = ServingSettings.from_env(kafka={"bootstrap": "b:9092", "group_instance_id": "pod-0"})
    assert given.for_local_server("0.0.0.0", 3000).kafka.group_instance_id == "pod-0"
    assert ServingSettings.from_env().for_local_server("0.0.0.0", 3000).kafka.group_instance_id is None
