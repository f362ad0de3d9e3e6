"""``MetricsMiddleware`` counts the API's answers by status: the series BentoML's own request metrics gave."""

from __future__ import annotations

import asyncio

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from shared.telemetry.prometheus import MetricsMiddleware


def _answering(status: int):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})
    return app


def _counts(statuses: list[tuple[str, int]]) -> dict:
    registry = CollectorRegistry()
    meter = MeterProvider(metric_readers=[PrometheusMetricReader(scope_info_enabled=False, registry=registry)]
                          ).get_meter("test")
    for path, status in statuses:
        middleware = MetricsMiddleware(_answering(status), api_routes=frozenset({"/predict"}), task="sentiment",
                                       meter=meter)
        sent = []

        async def receive():
            return {"type": "http.request", "body": b"{}", "more_body": False}

        async def send(message, sent=sent):
            sent.append(message)

        asyncio.run(middleware({"type": "http", "path": path, "method": "POST", "headers": []}, receive, send))
        assert sent[0]["status"] == status  # the answer itself passes unchanged
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(generate_latest(registry).decode()) for s in family.samples}


def test_the_api_answers_are_counted_by_status_and_other_paths_are_not():
    counts = _counts([("/predict", 200), ("/predict", 200), ("/predict", 422), ("/predict", 503), ("/readyz", 200)])
    label = lambda status: frozenset({("task", "sentiment"), ("route", "/predict"), ("status", status)})  # noqa: E731
    assert counts[("slm_http_responses_total", label("200"))] == 2
    assert counts[("slm_http_responses_total", label("422"))] == 1
    assert counts[("slm_http_responses_total", label("503"))] == 1
    assert sum(v for (name, _), v in counts.items() if name == "slm_http_responses_total") == 4
