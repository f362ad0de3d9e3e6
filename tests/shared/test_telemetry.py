"""Trace context from Kafka headers, and the spans the services create."""

from __future__ import annotations

from opentelemetry import trace

from shared.kafka.tracing import remote_spans as _remote_spans
from shared.telemetry import context_from_headers

TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class Rec:
    def __init__(self, headers):
        self.headers = headers


def test_context_from_headers_reads_traceparent():
    ctx = context_from_headers([("traceparent", TRACEPARENT), ("other", b"x")])
    span_context = trace.get_current_span(ctx).get_span_context()
    assert format(span_context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert span_context.is_remote


def test_missing_or_garbled_traceparent_gives_no_context():
    assert context_from_headers([]) is None
    assert context_from_headers(None) is None
    assert context_from_headers([("traceparent", b"\xff")]) is None


def test_batch_links_only_valid_incoming_traces():
    records = [Rec([("traceparent", TRACEPARENT)]), Rec([]), Rec([("traceparent", b"00-garbage")])]
    links = list(_remote_spans(records))
    assert [format(s.span_id, "016x") for s in links] == ["b7ad6b7169203331"]
