"""W3C trace context read from Kafka record headers, and kept as text where a record's headers cannot go."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = ["context_from_carrier", "context_from_headers", "headers_with_context", "trace_carrier"]

_propagator = TraceContextTextMapPropagator()
_KEYS = ("traceparent", "tracestate")


def trace_carrier(headers: list[tuple[str, bytes]] | None) -> dict[str, str]:
    """The ``traceparent`` / ``tracestate`` of record headers as text; empty when they carry none readable."""
    carrier = {}
    for key, value in headers or []:
        if key in _KEYS and value:
            try:
                carrier[key] = value.decode("ascii")
            except UnicodeDecodeError:
                return {}
    return carrier if "traceparent" in carrier else {}


def context_from_carrier(carrier: Any) -> Context | None:
    """The remote span context a carrier of :func:`trace_carrier` names, if any. It may come from stored data
    anyone could have edited: whatever is not a mapping of text is no context."""
    if not isinstance(carrier, Mapping):
        return None
    kept = {key: carrier[key] for key in _KEYS if isinstance(carrier.get(key), str)}
    if "traceparent" not in kept:
        return None
    return _propagator.extract(kept)


def context_from_headers(headers: list[tuple[str, bytes]] | None) -> Context | None:
    """The remote span context carried in ``traceparent`` / ``tracestate``, if any."""
    return context_from_carrier(trace_carrier(headers))


def headers_with_context(headers: list[tuple[str, bytes]], context: Context) -> list[tuple[str, bytes]]:
    """``headers`` with ``traceparent`` / ``tracestate`` naming the span of ``context`` instead."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=context)
    kept = [(key, value) for key, value in headers if key not in _KEYS]
    return kept + [(key, value.encode("ascii")) for key, value in carrier.items()]
