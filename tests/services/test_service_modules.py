"""Importing a service module declares its API and changes nothing else; building its app sets up the process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from shared.settings import REPO_ROOT

CHECK = """
import logging
from opentelemetry import trace
from uvicorn.config import HTTP_PROTOCOLS

protocols, handlers = dict(HTTP_PROTOCOLS), list(logging.getLogger("shared").handlers)
import services.{task}.service as module

service = module.{cls}
assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider", "a tracer provider was installed"
assert dict(HTTP_PROTOCOLS) == protocols, "uvicorn's protocols were patched"
assert logging.getLogger("shared").handlers == handlers, "logging was configured"
assert [api.route for api in service.apis.values()] == ["/predict"]
assert [cls.__name__ for cls, _ in service.middlewares] == ["MetricsMiddleware", "UnprocessableEntityMiddleware",
                                                          "RequestGuardMiddleware", "LeanApiMiddleware"]

app = service.to_asgi()
from bentoml._internal.configuration.containers import BentoMLContainer

assert type(trace.get_tracer_provider()).__name__ == "TracerProvider"
assert BentoMLContainer.tracer_provider.get() is trace.get_tracer_provider()
assert HTTP_PROTOCOLS["auto"].startswith("shared.compat:")
# BentoML's per-request metrics and access log are off; its tracing leaves /predict to ours.
server = BentoMLContainer.api_server_config
assert server.metrics.enabled.get() is False and server.logging.access.enabled.get() is False
assert BentoMLContainer.tracing_excluded_urls.get().url_disabled("http://127.0.0.1:3000/predict")
assert not BentoMLContainer.tracing_excluded_urls.get().url_disabled("http://127.0.0.1:3000/readyz")
names = {{middleware.cls.__name__ for middleware in app.user_middleware}}
assert "OpenTelemetryMiddleware" in names and not names & {{"RunnerTrafficMetricsMiddleware", "AccessLogMiddleware"}}
"""


@pytest.mark.parametrize("task", ["transactions", "entities", "helpdesk", "sentiment"])
def test_importing_a_service_changes_nothing_and_building_its_app_sets_up_the_process(task):
    code = CHECK.format(task=task, cls=task.title())
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}  # telemetry on, exporting nowhere
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
