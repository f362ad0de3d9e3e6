"""The review bridge's spans: a reviewed answer's trace goes on into Label Studio and out to ``<task>.feedback``.

- Writing a batch of review records into Label Studio is one span, linked to the span of each answer (the
  ``traceparent`` its review record carries). Each task keeps that context in its data
  (:data:`shared.review.labelling.TRACE_KEY`).
- Publishing a verdict is a span that continues the answer's trace (hours may pass between the two: a person
  decided), and the feedback record carries it as its ``traceparent``, as the services' results do. A verdict
  on a task without a context starts a trace of its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import trace

from shared.kafka.tracing import remote_spans
from shared.review.labelling import TRACE_KEY
from shared.telemetry import context_from_carrier, headers_with_context

__all__ = ["import_span", "mark_unsent", "verdict_span"]

tracer = trace.get_tracer(__name__)


@contextmanager
def import_span(task: str, topic: str, group_id: str, records: list) -> Iterator[trace.Span]:
    """The span of writing ``records`` (polled from ``topic``) into Label Studio; an error ends it failed."""
    links = [trace.Link(answer) for answer in remote_spans(records)]
    with tracer.start_as_current_span(
            f"{task} review import", kind=trace.SpanKind.CONSUMER, links=links,
            attributes={"messaging.system": "kafka", "messaging.destination.name": topic,
                        "messaging.batch.message_count": len(records),
                        "messaging.consumer.group.name": group_id}) as span:
        yield span


@contextmanager
def verdict_span(task: str, topic: str, task_data: Mapping, annotation_id) -> Iterator[list[tuple[str, bytes]]]:
    """The span of publishing one verdict to ``topic``, the child of the answer's span that ``task_data``
    names; yields the feedback record's headers."""
    parent = context_from_carrier(task_data.get(TRACE_KEY))
    attributes = {"messaging.system": "kafka", "messaging.destination.name": topic,
                  "messaging.operation.type": "publish"}
    if isinstance(annotation_id, int):
        attributes["slm.review.annotation_id"] = annotation_id
    with tracer.start_as_current_span(f"{task} review verdict", context=parent, kind=trace.SpanKind.PRODUCER,
                                      attributes=attributes) as span:
        yield headers_with_context([], trace.set_span_in_context(span))


def mark_unsent() -> None:
    """The current verdict span failed: the bridge stopped before Kafka acknowledged its record."""
    trace.get_current_span().set_status(trace.Status(trace.StatusCode.ERROR, "stopped before Kafka acknowledged it"))
