"""The task instruments as Prometheus reads them, and ``/metrics`` put together from two sources."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from shared.telemetry import prometheus
from shared.telemetry.instruments import TaskInstruments


def _samples(registry) -> dict:
    text = generate_latest(registry).decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _instruments():
    registry = CollectorRegistry()
    provider = MeterProvider(metric_readers=[PrometheusMetricReader(scope_info_enabled=False, registry=registry)])
    return TaskInstruments("entities", "ner-1", meter=provider.get_meter("test")), registry


def test_dlq_counts_by_error_type_and_requests_by_path():
    instruments, registry = _instruments()
    instruments.record_batch(polled=5, results=3, review=1, dlq_types={"not_json": 1, "schema": 1}, latency_ms=12.0,
                             path="kafka")
    instruments.record_batch(polled=2, results=2, review=0, dlq_types={}, latency_ms=3.0, path="rest")
    samples = _samples(registry)
    who = {("task", "entities"), ("model", "ner-1"), ("role", "primary")}
    assert samples[("slm_requests_total", frozenset(who | {("path", "kafka")}))] == 5
    assert samples[("slm_requests_total", frozenset(who | {("path", "rest")}))] == 2
    assert samples[("slm_dlq_total", frozenset(who | {("error_type", "not_json")}))] == 1
    assert samples[("slm_dlq_total", frozenset(who | {("error_type", "schema")}))] == 1
    assert samples[("slm_batch_latency_milliseconds_count", frozenset(who | {("path", "kafka")}))] == 1


def test_entity_predictions_count_each_span_by_type_with_its_score():
    instruments, registry = _instruments()
    span = lambda kind, score: SimpleNamespace(type=kind, score=score)  # noqa: E731
    results = [SimpleNamespace(entities=[span("ORG", 0.95), span("PER", 0.42)]),
               SimpleNamespace(entities=[span("ORG", 0.97)]), SimpleNamespace(entities=[])]
    instruments.predictions.observe([], results)
    samples = _samples(registry)
    who = {("task", "entities"), ("model", "ner-1"), ("role", "primary")}
    assert samples[("slm_predictions_total", frozenset(who | {("label", "ORG")}))] == 2
    assert samples[("slm_predictions_total", frozenset(who | {("label", "PER")}))] == 1
    assert samples[("slm_score_count", frozenset(who))] == 3
    assert samples[("slm_score_bucket", frozenset(who | {("le", "0.5")}))] == 1


def _call(app, path="/metrics") -> tuple[int, bytes]:
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "path": path, "method": "GET", "headers": []}
    asyncio.run(prometheus.MetricsMiddleware(app)(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def _answering(status: int, body: bytes):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": body})
    return app


def test_metrics_endpoint_appends_the_task_series_to_bentomls(monkeypatch):
    monkeypatch.setattr(prometheus, "exposition", lambda: b"slm_requests_total 1.0\n")
    assert _call(_answering(200, b"bentoml_service_request_total 4.0")) == (
        200, b"bentoml_service_request_total 4.0\nslm_requests_total 1.0\n")


def test_metrics_endpoint_serves_the_task_series_alone_where_bentomls_fails(monkeypatch):
    monkeypatch.setattr(prometheus, "exposition", lambda: b"slm_requests_total 1.0\n")
    assert _call(_answering(500, b"Internal Server Error")) == (200, b"slm_requests_total 1.0\n")


def test_other_paths_pass_through_untouched():
    assert _call(_answering(404, b"nope"), path="/predict") == (404, b"nope")


def test_every_live_running_loop_is_reported_not_only_the_first():
    from tests.shared.test_ray_metrics import LoopHealth

    registry = CollectorRegistry()
    meter = MeterProvider(metric_readers=[PrometheusMetricReader(scope_info_enabled=False, registry=registry)]
                          ).get_meter("test")
    first, second = LoopHealth(1.0, {("a.requests", 0): 5}), LoopHealth(2.0, {("b.requests", 0): 9})
    TaskInstruments("a", "m", meter=meter).observe_loop(first)
    TaskInstruments("b", "m", meter=meter).observe_loop(second)
    lags = {dict(labels)["task"]: value for (name, labels), value in _samples(registry).items()
            if name == "slm_kafka_lag"}
    assert lags == {"a": 5, "b": 9}
    second.running = False  # a stopped loop is no longer reported
    lags = {dict(labels)["task"] for (name, labels), value in _samples(registry).items() if name == "slm_kafka_lag"}
    assert lags == {"a"}
