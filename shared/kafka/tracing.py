"""The spans of a consumer loop's batch, and the trace context its answers carry on.

A batch gets one span, linked to the spans of the requests that came with a ``traceparent``.
Each answered request gets a span of its own, the child of the caller's span, and its result and
review records carry that span as their ``traceparent``, so a trace goes on across the Kafka hop.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace

from opentelemetry import trace

from shared.kafka.outgoing import OutgoingRecord
from shared.kafka.topics import TaskTopics
from shared.telemetry import context_from_headers, headers_with_context

__all__ = ["batch_span", "remote_spans", "traced_answers"]

tracer = trace.get_tracer(__name__)


def batch_span(topics: TaskTopics, group_id: str, records: Sequence) -> trace.Span:
    """The span of one batch, started and linked to each request's remote span. Not made current:
    the model's thread plans the batch and the loop's thread publishes it, each under
    ``trace.use_span``; the loop's thread ends it."""
    return tracer.start_span(
        f"{topics.task} process batch",
        kind=trace.SpanKind.CONSUMER,
        links=[trace.Link(span_context) for span_context in remote_spans(records)],
        attributes={"messaging.system": "kafka", "messaging.destination.name": topics.requests,
                    "messaging.batch.message_count": len(records), "messaging.consumer.group.name": group_id},
    )


def traced_answers(outgoing: Sequence[OutgoingRecord], batch: trace.Span, started_ns: int,
                   topics: TaskTopics) -> list[OutgoingRecord]:
    """``outgoing`` with one span per answered request, the child of the caller's span (or of the
    batch span when the request carried none) and linked to the batch span; the request's result
    and review records carry it as their ``traceparent``. The dead letters of invalid requests keep
    the request's own headers."""
    answer_spans: dict[tuple, object] = {}
    traced = []
    for out in outgoing:
        if out.topic not in (topics.results, topics.review):
            traced.append(out)
            continue
        if out.source not in answer_spans:
            span = tracer.start_span(
                f"{topics.task} process", context=context_from_headers(out.headers),
                kind=trace.SpanKind.CONSUMER, start_time=started_ns,
                links=[trace.Link(batch.get_span_context())],
                attributes={"messaging.system": "kafka", "messaging.destination.name": out.source[0],
                            "messaging.destination.partition.id": str(out.source[1]),
                            "messaging.kafka.offset": out.source[2]})
            span.end()
            answer_spans[out.source] = trace.set_span_in_context(span)
        traced.append(replace(out, headers=headers_with_context(out.headers, answer_spans[out.source])))
    return traced


def remote_spans(records: Iterable) -> Iterator[trace.SpanContext]:
    """The valid span contexts the records' ``traceparent`` headers name."""
    for record in records:
        ctx = context_from_headers(record.headers)
        if ctx is None:
            continue
        span_context = trace.get_current_span(ctx).get_span_context()
        if span_context.is_valid:
            yield span_context
