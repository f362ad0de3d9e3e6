"""Commit rules of one batch, with fake clients: commit only after every send is acknowledged."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
from kafka import TopicPartition
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.kafka import TaskConsumerLoop
from shared.settings import KafkaSettings
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


class FakeProducer:
    def __init__(self, fail_topic: str | None = None) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.fail_topic = fail_topic
        self.flushed = False

    def send(self, topic, value=None, key=None, headers=None):
        self.sent.append((topic, value))
        return Future(RuntimeError("broker said no") if topic == self.fail_topic else None)

    def flush(self):
        self.flushed = True


class FakeConsumer:
    def __init__(self) -> None:
        self.commits: list[dict] = []
        self.seeks: list[tuple] = []

    def commit(self, offsets):
        self.commits.append({tp: meta.offset for tp, meta in offsets.items()})

    def seek(self, tp, offset):
        self.seeks.append((tp, offset))


def _records():
    ok = json.dumps({"id": "a", "text": "up"}).encode()
    return [Record(ok, 5, 0), Record(b"{bad", 6, 0), Record(ok, 9, 2)]


def _loop() -> TaskConsumerLoop:
    return TaskConsumerLoop(FakeProcessor(), KafkaSettings(bootstrap="127.0.0.1:1"))


def test_batch_is_committed_after_all_sends_to_the_next_offsets():
    EXPORTER.clear()
    consumer, producer = FakeConsumer(), FakeProducer()
    _loop()._handle(consumer, producer, _records())
    assert producer.flushed
    assert sorted(t for t, _ in producer.sent) == ["sentiment.dlq", "sentiment.results", "sentiment.results"]
    assert consumer.commits == [{TopicPartition("sentiment.requests", 0): 7, TopicPartition("sentiment.requests", 2): 10}]
    (span,) = EXPORTER.get_finished_spans()
    assert span.name == "sentiment process batch"
    assert span.attributes["messaging.batch.message_count"] == 3
    assert span.attributes["slm.dlq"] == 1
    assert {format(link.context.trace_id, "032x") for link in span.links} == {"0af7651916cd43dd8448eb211c80319c"}


def test_a_failed_send_rewinds_and_commits_nothing():
    consumer, producer = FakeConsumer(), FakeProducer(fail_topic="sentiment.dlq")
    loop = _loop()
    loop._stop.set()  # skip the retry back-off wait
    loop._handle(consumer, producer, _records())
    assert consumer.commits == []
    assert sorted(consumer.seeks) == [(TopicPartition("sentiment.requests", 0), 5),
                                      (TopicPartition("sentiment.requests", 2), 9)]
