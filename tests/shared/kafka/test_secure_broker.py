"""The services' Kafka clients against a broker that demands credentials (``slm kafka up --secure``):
mutual TLS and SASL_SSL with SCRAM-SHA-512 round-trip records; a wrong password, a missing
client certificate or an untrusted broker certificate is one line at start, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer

from devtools import local_kafka
from devtools.local_kafka.security import SecurityFiles, client_settings
from shared.kafka import TaskConsumerLoop, TaskTopics
from shared.kafka.settings import KafkaSettings
from tests.support.fakes import FakeProcessor
from tests.support.processes import REPO_ROOT, free_port, run_to_exit, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory):
    """A private broker with its PLAINTEXT, mutual-TLS and SASL_SSL listeners; the client settings of each."""
    cfg = local_kafka.BrokerConfig.on_free_ports(tmp_path_factory.mktemp("secure-kafka"), secure=True)
    local_kafka.up(cfg)
    try:
        yield client_settings(SecurityFiles(cfg.security_dir), cfg.host, cfg.ssl_port, cfg.sasl_port)
    finally:
        local_kafka.down(cfg)


def _kafka_settings(env: dict[str, str], **extra) -> KafkaSettings:
    return KafkaSettings(**{name.removeprefix("SLM_KAFKA_").lower(): value for name, value in env.items()}, **extra)


@pytest.mark.parametrize("protocol", ["SSL", "SASL_SSL"])
def test_the_consumer_loop_round_trips_records_over_each_secured_listener(secure_broker, topic_prefix, protocol,
                                                                          monkeypatch):
    env = secure_broker[protocol]
    for name, value in env.items():  # the helpers (groups, benchmarks) take the same settings
        monkeypatch.setenv(name, value)
    settings = _kafka_settings(env, topic_prefix=topic_prefix, group_id=f"{topic_prefix}slm-sentiment")
    options = settings.client_options()
    topics = TaskTopics("sentiment", topic_prefix)
    loop = TaskConsumerLoop(FakeProcessor(), settings)
    loop.start()
    try:
        assert loop.wait_ready(90), "the loop never joined its group over " + protocol
        producer = KafkaProducer(**options, acks="all")
        for i in range(20):
            producer.send(topics.requests, json.dumps({"id": f"{topic_prefix}{i}", "text": f"Stock {i} rallies"})
                          .encode())
        producer.flush()
        producer.close()
        consumer = KafkaConsumer(topics.results, **options, auto_offset_reset="earliest", group_id=None)
        seen: set[str] = set()
        wait_for(lambda: seen.update(json.loads(r.value)["id"] for batch in consumer.poll(500).values()
                                     for r in batch) or len(seen) >= 20, 90, what=f"20 results over {protocol}")
        consumer.close()
        from shared.kafka.groups import group_members

        assert len(group_members(env["SLM_KAFKA_BOOTSTRAP"], loop.group_id)) == 1
    finally:
        loop.stop()
    assert seen == {f"{topic_prefix}{i}" for i in range(20)}


def _serve(quick_model_dir: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    slm = Path(sys.executable).with_name("slm")
    clean = {k: v for k, v in __import__("os").environ.items() if not k.startswith("SLM_KAFKA_")}
    try:
        return run_to_exit([str(slm), "serve", "sentiment", "--model", str(quick_model_dir), "--port",
                            str(free_port())], 120, cwd=REPO_ROOT, env={**clean, **env, "OTEL_SDK_DISABLED": "true"})
    except subprocess.TimeoutExpired as exc:  # it started serving: the refusal was missed
        pytest.fail(f"slm serve started instead of refusing; stderr:\n{(exc.stderr or b'')[-3000:]!r}")


@pytest.mark.parametrize(("case", "change", "expected"), [
    ("wrong-password", {"SLM_KAFKA_SASL_PASSWORD": "not-the-password"}, "Kafka SASL authentication as 'slm'"),
    ("untrusted-broker", {"SLM_KAFKA_SSL_CAFILE": None}, "Kafka TLS: the broker's certificate at"),
    ("no-client-certificate", {"SLM_KAFKA_SSL_CERTFILE": None, "SLM_KAFKA_SSL_KEYFILE": None},
     "Kafka TLS: the broker at"),
])
def test_refused_credentials_are_one_line_at_start_not_a_healthy_looking_retry_loop(
        secure_broker, quick_model_dir, case, change, expected):
    protocol = "SSL" if case == "no-client-certificate" else "SASL_SSL"
    env = {k: v for k, v in {**secure_broker[protocol], **change}.items() if v is not None}
    served = _serve(quick_model_dir, env)
    assert served.returncode == 2, served.stderr[-2000:]
    last = served.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {expected}"), served.stderr[-2000:]
    assert "not-the-password" not in served.stderr and secure_broker["SASL_SSL"]["SLM_KAFKA_SASL_PASSWORD"] \
        not in served.stderr
