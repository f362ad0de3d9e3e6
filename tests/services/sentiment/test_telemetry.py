"""Telemetry configured from the standard OTEL_* variables, seen from outside the process."""

from __future__ import annotations

import httpx
import pytest

from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.slow

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_console_exporter_prints_a_span_per_rest_request_linked_to_the_caller(quick_model_dir, tmp_path):
    service = ServiceProcess("sentiment", quick_model_dir, tmp_path / "serve.log",
                             env={"OTEL_SDK_DISABLED": "false", "OTEL_TRACES_EXPORTER": "console",
                                  "OTEL_SERVICE_NAME": "sentiment-under-test"}).wait_ready()
    try:
        response = httpx.post(f"{service.url}/predict", json={"items": [{"text": "Gold rallies"}]},
                              headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"}, timeout=30)
        assert response.status_code == 200
        # Without a caller's trace the request still gets a (root) span of its own.
        assert httpx.post(f"{service.url}/predict", json={"items": [{"text": "Oil slips"}]}).status_code == 200
    finally:
        assert service.terminate() == 0  # the batch span processor flushes on shutdown
    log = service.log()
    assert log.count('"name": "POST /predict"') == 2
    assert log.count('"name": "sentiment predict"') == 2
    assert f'"trace_id": "0x{TRACE_ID}"' in log  # the caller's trace continues in the service
    assert '"service.name": "sentiment-under-test"' in log
