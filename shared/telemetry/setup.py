"""Tracer and meter providers configured from the standard OpenTelemetry environment.

- ``OTEL_SDK_DISABLED=true``: nothing is set up (API calls become no-ops).
- ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the ``_TRACES_`` / ``_METRICS_`` variants) set:
  spans and metrics go over OTLP/HTTP.
- ``OTEL_TRACES_EXPORTER=console`` / ``OTEL_METRICS_EXPORTER=console``: printed to stderr.
- Otherwise spans are still created (so trace context propagates) but not exported.
Metrics are always readable as Prometheus text on ``/metrics`` (:mod:`shared.telemetry.prometheus`).
``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` name the resource as usual.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

__all__ = ["setup_logging", "setup_telemetry", "shutdown_telemetry"]

logger = logging.getLogger(__name__)
_lock = threading.Lock()
_done = False


def _exporter_choice(signal: str) -> str:
    choice = os.environ.get(f"OTEL_{signal.upper()}_EXPORTER", "").strip().lower()
    if choice:
        return choice
    if os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return "otlp"
    return "none"


def _in_ray_worker() -> bool:
    """A Ray Serve replica's process (Ray is imported and connected), not ``bentoml serve``."""
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


def setup_logging(level: int = logging.INFO) -> None:
    """Let the project's loggers (one structured line per batch) through BentoML's handlers.

    BentoML configures its own loggers and leaves the root logger at WARNING; ours sit under
    ``shared`` and ``services`` and need their level set, plus a handler if none is present.
    """
    for name in ("shared", "services"):
        project_logger = logging.getLogger(name)
        project_logger.setLevel(level)
        if not logging.getLogger().handlers and not project_logger.handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] [%(name)s] %(message)s"))
            project_logger.addHandler(handler)
            # A root handler added later (a Ray Serve replica gets one) would print each line twice.
            project_logger.propagate = False


def shutdown_telemetry() -> None:
    """Flush and stop the providers (batched spans would otherwise be lost at exit)."""
    from opentelemetry import metrics, trace

    for provider in (trace.get_tracer_provider(), metrics.get_meter_provider()):
        shutdown = getattr(provider, "shutdown", None)
        if shutdown is not None:
            shutdown()


def setup_telemetry(service_name: str) -> None:
    """Install global tracer and meter providers once per process."""
    global _done
    with _lock:
        if _done:
            return
        _done = True
        if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
            logger.info("telemetry disabled by OTEL_SDK_DISABLED")
            return
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

        resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", service_name)})
        tracer_provider = TracerProvider(resource=resource)
        traces = _exporter_choice("traces")
        if traces == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        elif traces == "console":
            tracer_provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        trace.set_tracer_provider(tracer_provider)

        from shared.telemetry.prometheus import prometheus_reader

        readers = [prometheus_reader()]  # /metrics, whatever else exports them
        if _in_ray_worker():
            from shared.telemetry.ray_metrics import ray_metrics_reader

            readers.append(ray_metrics_reader())  # Ray's per-node metrics port, which Prometheus scrapes
        metrics_choice = _exporter_choice("metrics")
        if metrics_choice == "otlp":
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

            readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
        elif metrics_choice == "console":
            readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))
        logger.info('telemetry service=%s traces=%s metrics=%s', service_name, traces, metrics_choice)
