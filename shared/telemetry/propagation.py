"""W3C trace context read from Kafka record headers."""

from __future__ import annotations

from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = ["context_from_headers", "headers_with_context"]

_propagator = TraceContextTextMapPropagator()


def context_from_headers(headers: list[tuple[str, bytes]] | None) -> Context | None:
    """The remote span context carried in ``traceparent`` / ``tracestate``, if any."""
    carrier = {}
    for key, value in headers or []:
        if key in ("traceparent", "tracestate") and value:
            try:
                carrier[key] = value.decode("ascii")
            except UnicodeDecodeError:
                return None
    if "traceparent" not in carrier:
        return None
    return _propagator.extract(carrier)


def headers_with_context(headers: list[tuple[str, bytes]], context: Context) -> list[tuple[str, bytes]]:
    """``headers`` with ``traceparent`` / ``tracestate`` naming the span of ``context`` instead."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=context)
    kept = [(key, value) for key, value in headers if key not in ("traceparent", "tracestate")]
    return kept + [(key, value.encode("ascii")) for key, value in carrier.items()]
