"""Commit rules of one batch, with fake clients: commit only after every send is acknowledged."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import pytest
from kafka import TopicPartition
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.errors import ProduceError
from shared.kafka import TaskConsumerLoop
from shared.kafka.settings import KafkaSettings
from tests.support.fakes import FakeProcessor

TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def _tracing():
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(provider)


@dataclass
class Record:
    value: bytes
    offset: int
    partition: int
    topic: str = "sentiment.requests"
    key: bytes | None = None
    headers: list = field(default_factory=lambda: [("traceparent", TRACEPARENT)])


class Future:
    def __init__(self, error: Exception | None) -> None:
        self.exception = error

    def failed(self) -> bool:
        return self.exception is not None


class RetriableError(Exception):
    retriable = True


class FakeProducer:
    """Acknowledges everything, except: ``fail_topic`` fails after the send (retriable or
    not), ``refuse_topic`` is refused synchronously, as kafka-python does for an oversized record."""

    def __init__(self, fail_topic: str | None = None, retriable: bool = True, refuse_topic: str | None = None):
        self.sent: list[tuple[str, bytes | None, dict]] = []
        self.fail_topic, self.retriable, self.refuse_topic = fail_topic, retriable, refuse_topic
        self.flushed = False

    refuse_once = False

    def send(self, topic, value=None, key=None, headers=None):
        if topic == self.refuse_topic:
            if self.refuse_once:
                self.refuse_topic = None
            raise ValueError("record too large")
        self.sent.append((topic, value, dict(headers or [])))
        if topic == self.fail_topic:
            return Future(RetriableError("not leader") if self.retriable else RuntimeError("broker said no"))
        return Future(None)

    def flush(self):
        self.flushed = True


class FakeConsumer:
    def __init__(self) -> None:
        self.commits: list[dict] = []  # asynchronous: after each batch, and at revocation (awaited)
        self.sync_commits: list[dict] = []  # before the clients close

    def commit(self, offsets, timeout_ms=None):
        assert timeout_ms, "a synchronous commit must not wait forever on a broker that is down"
        self.sync_commits.append({tp: meta.offset for tp, meta in offsets.items()})

    def commit_async(self, offsets, callback=None):
        from kafka.future import Future as KafkaFuture

        self.commits.append({tp: meta.offset for tp, meta in offsets.items()})
        return KafkaFuture().success(None)



def _records():
    ok = json.dumps({"id": "a", "text": "up"}).encode()
    return [Record(ok, 5, 0), Record(b"{bad", 6, 0), Record(ok, 9, 2)]


def _loop() -> TaskConsumerLoop:
    return TaskConsumerLoop(FakeProcessor(), KafkaSettings(bootstrap="127.0.0.1:1"))


def _revoke(loop, partitions) -> None:
    """What the asynchronous rebalance listener does on kafka-python's IO thread."""
    asyncio.run(loop.checkpoint.commit_revoked(loop._on_partitions_revoked(partitions)))


def test_revoked_partitions_get_their_finished_offsets_committed_and_awaited():
    consumer, producer = FakeConsumer(), FakeProducer()
    loop = _loop()
    loop.checkpoint.attach(consumer)
    loop._handle(consumer, producer, _records())
    assert len(consumer.commits) == 1  # the batch's own commit
    _revoke(loop, {TopicPartition("sentiment.requests", 2)})
    assert consumer.commits[-1] == {TopicPartition("sentiment.requests", 2): 10}
    committed = len(consumer.commits)
    _revoke(loop, {TopicPartition("sentiment.requests", 2)})  # nothing new finished since
    assert len(consumer.commits) == committed
    assert consumer.sync_commits == []
    loop.checkpoint.commit_finished()  # what the loop does before closing its clients, on its own thread
    assert consumer.sync_commits == [{TopicPartition("sentiment.requests", 0): 7}]


def test_batch_is_committed_after_all_sends_to_the_next_offsets():
    EXPORTER.clear()
    consumer, producer = FakeConsumer(), FakeProducer()
    _loop()._handle(consumer, producer, _records())
    assert producer.flushed
    assert sorted(t for t, _, _ in producer.sent) == ["sentiment.dlq", "sentiment.results", "sentiment.results"]
    assert consumer.commits == [{TopicPartition("sentiment.requests", 0): 7, TopicPartition("sentiment.requests", 2): 10}]
    (span,) = [span for span in EXPORTER.get_finished_spans() if span.name == "sentiment process batch"]
    assert span.attributes["messaging.batch.message_count"] == 3
    assert span.attributes["slm.dlq"] == 1
    assert {format(link.context.trace_id, "032x") for link in span.links} == {"0af7651916cd43dd8448eb211c80319c"}


def test_each_answer_carries_a_traceparent_whose_parent_is_the_span_that_processed_it():
    EXPORTER.clear()
    consumer, producer = FakeConsumer(), FakeProducer()
    _loop()._handle(consumer, producer, _records())
    spans = {span.context.span_id: span for span in EXPORTER.get_finished_spans()}
    (batch,) = [span for span in spans.values() if span.name == "sentiment process batch"]
    results = [headers for topic, _, headers in producer.sent if topic == "sentiment.results"]
    assert len(results) == 2
    parents = set()
    for headers in results:
        _, trace_id, span_id, _ = headers["traceparent"].decode().split("-")
        assert trace_id == "0af7651916cd43dd8448eb211c80319c"  # the caller's trace goes on
        answer = spans[int(span_id, 16)]  # a span this service made, not the caller's
        assert answer.name == "sentiment process"
        assert format(answer.parent.span_id, "016x") == "b7ad6b7169203331"  # child of the caller's span
        assert [link.context.span_id for link in answer.links] == [batch.context.span_id]
        parents.add(span_id)
    assert len(parents) == 2  # one span per request
    (dead,) = [headers for topic, _, headers in producer.sent if topic == "sentiment.dlq"]
    assert dead["traceparent"] == TRACEPARENT  # a dead letter keeps the request's own headers


def test_a_retriable_send_failure_commits_nothing_and_raises_for_a_client_restart():
    consumer, producer = FakeConsumer(), FakeProducer(fail_topic="sentiment.dlq")
    with pytest.raises(ProduceError, match="not leader"):
        _loop()._handle(consumer, producer, _records())
    assert consumer.commits == []


def test_a_result_refused_for_its_size_becomes_a_too_large_dlq_record_with_the_request(caplog):
    consumer, producer = FakeConsumer(), FakeProducer(refuse_topic="sentiment.results")
    with caplog.at_level("INFO", logger="shared.kafka.loop"):
        _loop()._handle(consumer, producer, _records())
    dlq = [(value, headers) for topic, value, headers in producer.sent if topic == "sentiment.dlq"]
    too_large = [(v, h) for v, h in dlq if h["error.type"] == b"too_large"]
    assert len(too_large) == 2
    assert {h["source.offset"] for _, h in too_large} == {b"5", b"9"}
    assert all(b"record too large" in h["error.message"] for _, h in too_large)
    assert {v for v, _ in too_large} == {_records()[0].value}  # the request's bytes, not nothing
    assert consumer.commits  # nothing blocks the partition
    (batch,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("batch ")]
    assert "records=3 results=0 review=0 dlq=3" in batch  # each request counted once


def test_a_dlq_record_refused_for_its_size_keeps_the_pointer_and_counts_once(caplog):
    consumer, producer = FakeConsumer(), FakeProducer(refuse_topic="sentiment.dlq")
    producer.refuse_once = True
    with caplog.at_level("INFO", logger="shared.kafka.loop"):
        _loop()._handle(consumer, producer, [Record(b"{bad", 6, 0)])
    (fallback,) = [(v, h) for t, v, h in producer.sent if t == "sentiment.dlq"]
    assert fallback[0] is None and fallback[1]["error.type"] == b"too_large"
    assert fallback[1]["source.offset"] == b"6"
    (batch,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("batch ")]
    assert "dlq=1 " in batch


def test_a_permanently_failed_send_is_dead_lettered_too():
    consumer, producer = FakeConsumer(), FakeProducer(fail_topic="sentiment.results", retriable=False)
    _loop()._handle(consumer, producer, _records())
    types = [h.get("error.type") for topic, _, h in producer.sent if topic == "sentiment.dlq"]
    assert types.count(b"unproducible") == 2
    assert consumer.commits


def test_the_produce_policy_decides_between_dead_letter_and_retry():
    seen = []

    def retry_everything(exc, record, logger):
        seen.append(record.topic)
        return False

    consumer, producer = FakeConsumer(), FakeProducer(fail_topic="sentiment.results", retriable=False)
    loop = TaskConsumerLoop(FakeProcessor(), KafkaSettings(bootstrap="127.0.0.1:1"), on_produce_error=retry_everything)
    with pytest.raises(ProduceError, match="broker said no"):
        loop._handle(consumer, producer, _records())
    assert seen == ["sentiment.results"] and consumer.commits == []
