"""The consumer loop against the real broker when records or the group misbehave: records the
client cannot decode, compressed batches, over-size values, a rebalance with work to commit.

The model is the keyword fake: these tests are about the loop, and the broker is real.
"""

from __future__ import annotations

import json
import logging
import threading

import pytest
from kafka import KafkaConsumer, TopicPartition

from shared.kafka import TaskConsumerLoop, TaskTopics, ensure_topics
from shared.kafka.settings import KafkaSettings
from tests.support.fakes import FakeProcessor
from tests.support.kafka_io import RawHeaderKey, committed_offsets, drain, produce
from tests.support.processes import wait_for

pytestmark = pytest.mark.integration


def _settings(bootstrap: str, prefix: str, **overrides) -> KafkaSettings:
    options = {"bootstrap": bootstrap, "topic_prefix": prefix, "group_id": f"{prefix}slm-sentiment", "max_batch": 16,
               "partitions": 1, **overrides}
    return KafkaSettings(**options)


def _requests(prefix: str, ids) -> list:
    return [(f"k{i}".encode(), json.dumps({"id": f"{prefix}{i}", "text": f"Stock {i} rallies"}).encode(), [])
            for i in ids]


def _ids(records) -> set[str]:
    return {json.loads(r.value)["id"] for r in records}


@pytest.fixture
def started():
    loops: list[TaskConsumerLoop] = []

    def start(settings: KafkaSettings) -> TaskConsumerLoop:
        loop = TaskConsumerLoop(FakeProcessor(), settings)
        loop.start()
        loops.append(loop)
        assert loop.wait_ready(60), "consumer never joined its group"
        return loop

    yield start
    for loop in loops:
        loop.stop()


def test_a_header_key_that_is_not_utf8_goes_to_the_dlq_and_the_partition_moves_on(
        kafka_bootstrap, topic_prefix, started, caplog):
    settings = _settings(kafka_bootstrap, topic_prefix)
    topics = TaskTopics("sentiment", topic_prefix)
    with caplog.at_level(logging.INFO, logger="shared.kafka"):
        loop = started(settings)
        produce(kafka_bootstrap, topics.requests, _requests(topic_prefix, range(2)))
        produce(kafka_bootstrap, topics.requests, [(b"poison", b'{"text": "fine"}', [(RawHeaderKey(b"\xff\xfe"), b"v")])])
        produce(kafka_bootstrap, topics.requests, _requests(topic_prefix, range(2, 7)))
        results = drain(kafka_bootstrap, topics.results, until=lambda r: len(_ids(r)) >= 7, timeout=60)
        dlq = drain(kafka_bootstrap, topics.dlq, until=lambda r: len(r) >= 1, timeout=30)
        wait_for(lambda: committed_offsets(kafka_bootstrap, loop.group_id).get(TopicPartition(topics.requests, 0)) == 8,
                 30, what="the commit past the poison pill")
    assert _ids(results) == {f"{topic_prefix}{i}" for i in range(7)}
    (dead,) = dlq
    headers = dict(dead.headers)
    assert headers["error.type"] == b"undecodable"
    assert (headers["source.topic"], headers["source.partition"], headers["source.offset"]) == (
        topics.requests.encode(), b"0", b"2")
    assert b"UnicodeDecodeError" in headers["error.message"] or b"invalid" in headers["error.message"].lower()
    assert loop.undecodable == 1
    # One incident, not a client restart per poll.
    assert not [r for r in caplog.records if "consumer loop failed" in r.getMessage()]


def test_a_batch_in_a_codec_the_client_lacks_is_dead_lettered_record_by_record(
        kafka_bootstrap, topic_prefix, started, monkeypatch):
    from kafka import codec

    settings = _settings(kafka_bootstrap, topic_prefix)
    topics = TaskTopics("sentiment", topic_prefix)
    ensure_topics(settings, topics.all())
    # One batch of three (the linger holds the first until the others join it), before the loop reads.
    produce(kafka_bootstrap, topics.requests, _requests(topic_prefix, range(3)), compression_type="zstd",
            linger_ms=500)
    monkeypatch.setattr(codec, "has_zstd", lambda: False)  # as in an image without zstandard
    loop = started(settings)
    produce(kafka_bootstrap, topics.requests, _requests(topic_prefix, range(3, 5)))
    results = drain(kafka_bootstrap, topics.results, until=lambda r: len(_ids(r)) >= 2, timeout=60)
    dlq = drain(kafka_bootstrap, topics.dlq, until=lambda r: len(r) >= 3, timeout=30)
    assert _ids(results) == {f"{topic_prefix}3", f"{topic_prefix}4"}
    assert sorted(int(dict(r.headers)["source.offset"]) for r in dlq) == [0, 1, 2]
    assert {dict(r.headers)["error.type"] for r in dlq} == {b"undecodable"}
    assert all(b"zstd" in dict(r.headers)["error.message"] for r in dlq)
    assert loop.undecodable == 3


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_batches_are_read(kafka_bootstrap, topic_prefix, started, codec):
    """Real producers compress; the serving image must have every codec kafka-python reads."""
    settings = _settings(kafka_bootstrap, topic_prefix)
    topics = TaskTopics("sentiment", topic_prefix)
    started(settings)
    produce(kafka_bootstrap, topics.requests, _requests(topic_prefix, range(20)), compression_type=codec)
    results = drain(kafka_bootstrap, topics.results, until=lambda r: len(_ids(r)) >= 20, timeout=60)
    dlq = drain(kafka_bootstrap, topics.dlq, until=lambda r: False, timeout=2)
    assert _ids(results) == {f"{topic_prefix}{i}" for i in range(20)}
    assert dlq == []


def test_an_oversized_request_keeps_its_first_bytes_in_the_dlq_and_counts_once(
        kafka_bootstrap, topic_prefix, started, caplog):
    settings = _settings(kafka_bootstrap, topic_prefix, dlq_max_value_bytes=100_000)
    topics = TaskTopics("sentiment", topic_prefix)
    big = json.dumps({"id": "big", "text": "x" * 2_000_000}).encode()  # compresses to a few KB: the broker takes it
    with caplog.at_level(logging.INFO, logger="shared.kafka"):
        started(settings)
        produce(kafka_bootstrap, topics.requests, [(b"big", big, [("correlation-id", b"c-big")])],
                compression_type="gzip", max_request_size=4_000_000)
        (dead,) = drain(kafka_bootstrap, topics.dlq, until=lambda r: len(r) >= 1, timeout=60)
    headers = dict(dead.headers)
    assert headers["error.type"] == b"too_large"
    assert dead.value == big[:100_000]
    assert headers["original.size"] == str(len(big)).encode() and headers["original.truncated"] == b"true"
    assert headers["correlation-id"] == b"c-big" and headers["source.offset"] == b"0"
    batches = [r.getMessage() for r in caplog.records if r.getMessage().startswith("batch ")]
    assert any("records=1 results=0 review=0 dlq=1 " in line for line in batches), batches


class _DropBatchCommits:
    """A consumer whose per-batch asynchronous commits (made on the loop's thread) are lost, as
    when the coordinator moves: only the commit at revocation can bring the offsets home."""

    def __init__(self, consumer, loop_thread: str) -> None:
        self._consumer, self._loop_thread = consumer, loop_thread

    def commit_async(self, offsets=None, callback=None):
        if threading.current_thread().name == self._loop_thread:
            return None
        return self._consumer.commit_async(offsets, callback=callback)

    def __getattr__(self, name):
        return getattr(self._consumer, name)


def test_finished_offsets_are_committed_when_a_rebalance_revokes_them(kafka_bootstrap, topic_prefix, started, caplog):
    settings = _settings(kafka_bootstrap, topic_prefix, partitions=2)
    topics = TaskTopics("sentiment", topic_prefix)
    loop = TaskConsumerLoop(FakeProcessor(), settings)
    build = loop._clients

    def clients():
        consumer, producer = build()
        return _DropBatchCommits(consumer, f"kafka-{loop.processor.task}"), producer

    loop._clients = clients
    with caplog.at_level(logging.INFO, logger="shared.kafka"):
        loop.start()
        try:
            assert loop.wait_ready(60)
            produce(kafka_bootstrap, topics.requests, _requests(topic_prefix, range(30)))
            drain(kafka_bootstrap, topics.results, until=lambda r: len(_ids(r)) >= 30, timeout=60)
            assert committed_offsets(kafka_bootstrap, loop.group_id) == {}, "per-batch commits were not dropped"
            # A second member joins: the loop's partitions are revoked, and what it finished must be committed.
            other = KafkaConsumer(topics.requests, bootstrap_servers=kafka_bootstrap, group_id=loop.group_id,
                                  enable_auto_commit=False)
            try:
                wait_for(lambda: other.poll(timeout_ms=200) is not None and other.assignment(), 60,
                         what="the second member's assignment")
                committed = committed_offsets(kafka_bootstrap, loop.group_id)
            finally:
                other.close(autocommit=False)
        finally:
            loop.stop()
    assert sum(committed.values()) == 30, committed
    assert not [r for r in caplog.records if "commit of finished offsets failed" in r.getMessage()]
