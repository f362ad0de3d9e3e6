"""Traces exported over OTLP to a receiver on loopback: a REST call and a Kafka record each give one
connected trace, continued from the caller's span; the service's metrics arrive over OTLP too."""

from __future__ import annotations

import json

import httpx
import pytest

from shared.kafka import TaskTopics
from tests.support.kafka_io import drain, produce
from tests.support.otlp import OtlpReceiver, connected_to
from tests.support.processes import ServiceProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REST_TRACE, REST_CALLER = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
KAFKA_TRACE, KAFKA_PRODUCER = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"


@pytest.fixture
def receiver():
    receiver = OtlpReceiver().start()
    yield receiver
    receiver.stop()


def test_a_rest_call_and_a_kafka_record_each_give_one_connected_trace(quick_model_dir, tmp_path, kafka_bootstrap,
                                                                      topic_prefix, receiver):
    topics = TaskTopics("sentiment", topic_prefix)
    env = {"OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
           "OTEL_SERVICE_NAME": "sentiment-traced", "OTEL_BSP_SCHEDULE_DELAY": "200",
           "OTEL_METRIC_EXPORT_INTERVAL": "1000", "SLM_KAFKA_BOOTSTRAP": kafka_bootstrap,
           "SLM_KAFKA_TOPIC_PREFIX": topic_prefix, "SLM_KAFKA_GROUP_ID": f"{topic_prefix}slm-sentiment"}
    service = ServiceProcess("sentiment", quick_model_dir, tmp_path / "serve.log", env=env).wait_ready()
    try:
        rest = httpx.post(f"{service.url}/predict", json={"items": [{"text": "Gold rallies"}]},
                          headers={"traceparent": f"00-{REST_TRACE}-{REST_CALLER}-01"}, timeout=30)
        assert rest.status_code == 200
        produce(kafka_bootstrap, topics.requests, [
            (None, json.dumps({"id": "t1", "text": "Oil slips"}).encode(),
             [("traceparent", f"00-{KAFKA_TRACE}-{KAFKA_PRODUCER}-01".encode())])])
        (result,) = drain(kafka_bootstrap, topics.results, until=lambda r: len(r) >= 1)
        wait_for(lambda: receiver.named("sentiment process batch") and receiver.named("sentiment predict")
                 and "slm.requests" in receiver.metric_names, timeout=30, what="spans and metrics exported")
    finally:
        assert service.terminate() == 0

    # REST: the server span continues the caller's trace, the service's answer span is in it, and
    # the shared batch that ran the model (a trace of its own) links to that answer span.
    rest_trace = receiver.trace(REST_TRACE)
    assert connected_to(rest_trace, REST_CALLER), rest_trace
    names = {span.name for span in rest_trace}
    assert {"POST /predict", "sentiment answer"} <= names
    (answer,) = [span for span in rest_trace if span.name == "sentiment answer"]
    assert any((REST_TRACE, answer.span_id) in span.links for span in receiver.named("sentiment predict"))
    assert all(span.service == "sentiment-traced" for span in rest_trace)

    # Kafka: the result's traceparent names the span that processed the record, whose parent is
    # the producer's span; the batch span links to the producer's span.
    _, trace_id, parent_id, _ = dict(result.headers)["traceparent"].decode().split("-")
    assert trace_id == KAFKA_TRACE
    kafka_trace = receiver.trace(KAFKA_TRACE)
    assert connected_to(kafka_trace, KAFKA_PRODUCER), kafka_trace
    (process,) = [span for span in kafka_trace if span.span_id == parent_id]
    assert process.name == "sentiment process" and process.parent_span_id == KAFKA_PRODUCER
    assert any((KAFKA_TRACE, KAFKA_PRODUCER) in span.links for span in receiver.named("sentiment process batch"))

    # The instruments /metrics reads are the ones OTLP exports.
    assert {"slm.requests", "slm.results", "slm.score", "slm.predictions"} <= receiver.metric_names
