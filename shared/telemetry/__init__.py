"""OpenTelemetry set-up from the standard OTEL_* variables, and the services' instruments."""

from shared.telemetry.setup import setup_logging, setup_telemetry, shutdown_telemetry
from shared.telemetry.instruments import TaskInstruments
from shared.telemetry.propagation import context_from_carrier, context_from_headers, headers_with_context, trace_carrier

__all__ = [
    "TaskInstruments",
    "context_from_carrier",
    "context_from_headers",
    "headers_with_context",
    "setup_logging",
    "setup_telemetry",
    "shutdown_telemetry",
    "trace_carrier",
]
