"""The connection options of every Kafka client the project builds for a given bootstrap: the
services' loops, the admin and consumer-group helpers, the demo, the benchmarks. The security
options (TLS, client certificate, SASL) come from the same ``SLM_KAFKA_*`` settings as the
services', so a tool pointed at a secured broker connects as the services do."""

from __future__ import annotations

from shared.kafka.settings import KafkaSettings

__all__ = ["client_options"]


def client_options(bootstrap: str) -> dict:
    """kafka-python's connection options for *bootstrap*, the rest from ``SLM_KAFKA_*``."""
    return KafkaSettings(bootstrap=bootstrap).client_options()
