"""Any Kafka client works: Kafka's own console producer and consumer talk to the service."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from shared.kafka import TaskTopics
from devtools.local_kafka import BrokerConfig
from tests.services.sentiment.test_kafka import _start

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _java(main_class: str, *args: str, stdin: str | None = None) -> str:
    libs = BrokerConfig.from_env().libs_dir
    result = subprocess.run(["java", "-cp", f"{libs}/*", main_class, *args], input=stdin, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.skipif(shutil.which("java") is None, reason="java is not installed")
def test_console_producer_in_console_consumer_out(quick_model_dir, tmp_path, kafka_bootstrap, topic_prefix):
    topics = TaskTopics("sentiment", topic_prefix)
    service = _start(quick_model_dir, tmp_path, kafka_bootstrap, topic_prefix)
    try:
        lines = "".join(f'k{i}|{{"id": "c{i}", "text": "Shares of company {i} slump"}}\n' for i in range(3))
        _java("org.apache.kafka.tools.ConsoleProducer", "--bootstrap-server", kafka_bootstrap,
              "--topic", topics.requests, "--property", "parse.key=true", "--property", "key.separator=|",
              stdin=lines)
        out = _java("org.apache.kafka.tools.consumer.ConsoleConsumer", "--bootstrap-server", kafka_bootstrap,
                    "--topic", topics.results, "--from-beginning", "--max-messages", "3",
                    "--property", "print.key=true", "--property", "key.separator=|", "--timeout-ms", "90000")
    finally:
        assert service.terminate() == 0
    received = dict(line.split("|", 1) for line in out.strip().splitlines())
    assert sorted(received) == ["k0", "k1", "k2"]
    for key, value in received.items():
        result = json.loads(value)
        assert result["id"] == f"c{key[1:]}"
        assert result["label"] in {"bearish", "bullish", "neutral"}
