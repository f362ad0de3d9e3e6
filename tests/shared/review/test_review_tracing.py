"""A reviewed answer's trace goes on through the bridge: its task keeps the answer's context, the import of a batch
links to the answers, and the verdict's feedback record continues the answer's trace."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from shared.review import tracing
from shared.review.labelling import TRACE_KEY, review_item, task_payload
from shared.review.verdicts import VerdictPublisher
from shared.telemetry import trace_carrier
from tests.support.spans import record_spans

TRACE = "0af7651916cd43dd8448eb211c80319c"
ANSWER = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE}-{ANSWER}-01"


@pytest.fixture
def spans(monkeypatch):
    return record_spans(monkeypatch, tracing)


@dataclass
class Record:
    headers: list = field(default_factory=list)


def _annotation(label: str) -> dict:
    return {"id": 7, "updated_at": "2026-12-05T12:00:00Z", "was_cancelled": False,
            "result": [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]}


def _publish(task_data: dict) -> list[tuple[str, bytes]]:
    sent = []
    publisher = VerdictPublisher(None, 1, lambda key, value, headers: sent.append((json.loads(value), headers)),
                                 entities=False, task="sentiment", topic="sentiment.feedback", sweep_interval_s=60)
    assert publisher._publish(task_data, _annotation("bearish"), threading.Event())
    (verdict, headers), = sent
    assert verdict["label"] == "bearish"
    return headers


def test_the_task_keeps_the_answers_trace_context():
    carrier = trace_carrier([("correlation-id", b"c-1"), ("traceparent", TRACEPARENT.encode())])
    assert carrier == {"traceparent": TRACEPARENT}
    item = review_item({"id": "a", "label": "bullish", "score": 0.3, "input": {"text": "t"}}, carrier)
    assert task_payload(item, entities=False)["data"][TRACE_KEY] == {"traceparent": TRACEPARENT}
    untraced = review_item({"id": "b", "label": "bullish", "score": 0.3, "input": {"text": "t"}}, trace_carrier([]))
    assert TRACE_KEY not in task_payload(untraced, entities=False)["data"]
    assert trace_carrier([("traceparent", "00-é".encode())]) == {}


def test_the_verdict_continues_the_answers_trace(spans):
    headers = dict(_publish({"slm_id": "a", TRACE_KEY: {"traceparent": TRACEPARENT}}))
    span, = spans.get_finished_spans()
    assert span.name == "sentiment review verdict" and span.kind == SpanKind.PRODUCER
    assert format(span.context.trace_id, "032x") == TRACE and format(span.parent.span_id, "016x") == ANSWER
    assert span.attributes["messaging.destination.name"] == "sentiment.feedback"
    assert span.attributes["slm.review.annotation_id"] == 7
    # The feedback record names the verdict's span, as a result names its answer's.
    assert headers["traceparent"] == f"00-{TRACE}-{format(span.context.span_id, '016x')}-01".encode()


@pytest.mark.parametrize("stored", [None, "00-not-a-context", {"traceparent": 5}, {"traceparent": "garbage"}])
def test_a_task_without_a_readable_context_publishes_in_a_trace_of_its_own(spans, stored):
    data = {"slm_id": "a"} if stored is None else {"slm_id": "a", TRACE_KEY: stored}
    headers = dict(_publish(data))
    span, = spans.get_finished_spans()
    assert span.parent is None and format(span.context.trace_id, "032x") != TRACE
    assert headers["traceparent"].decode().split("-")[1] == format(span.context.trace_id, "032x")


def test_a_verdict_the_bridge_stopped_sending_ends_its_span_failed(spans):
    stop = threading.Event()

    def refuse(key, value, headers):
        stop.set()  # the bridge is told to stop while Kafka refuses
        raise TimeoutError("no acknowledgement")

    publisher = VerdictPublisher(None, 1, refuse, entities=False, task="sentiment", topic="sentiment.feedback",
                                 sweep_interval_s=60, retry_max_s=0.01)
    assert not publisher._publish({"slm_id": "a"}, _annotation("bearish"), stop)
    span, = spans.get_finished_spans()
    assert span.status.status_code == StatusCode.ERROR


def test_an_import_links_to_the_answers_it_writes_and_fails_with_its_batch(spans):
    records = [Record([("traceparent", TRACEPARENT.encode())]), Record(), Record([("traceparent", b"garbage")])]
    with tracing.import_span("sentiment", "sentiment.review", "g", records):
        pass
    with pytest.raises(RuntimeError), tracing.import_span("sentiment", "sentiment.review", "g", records[:1]):
        raise RuntimeError("Label Studio is down")
    written, failed = spans.get_finished_spans()
    assert written.kind == SpanKind.CONSUMER and written.attributes["messaging.batch.message_count"] == 3
    assert [format(link.context.span_id, "016x") for link in written.links] == [ANSWER]
    assert failed.status.status_code == StatusCode.ERROR
