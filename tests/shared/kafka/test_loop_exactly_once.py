"""Exactly-once delivery (``delivery="exactly_once"``) against a real broker: each micro-batch is
a transaction, an aborted one is consumed again without a visible duplicate, a zombie is fenced."""

from __future__ import annotations

import json
import threading
from collections import Counter

import pytest

from shared.errors import ProduceError
from shared.kafka import TaskConsumerLoop, TaskTopics
from shared.kafka.settings import KafkaSettings
from tests.support.fakes import FakeProcessor
from tests.support.kafka_io import committed_total, drain, produce
from tests.support.processes import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _requests(prefix: str, n: int) -> list:
    # Every fifth one is "unsure": its answer also goes to <task>.review.
    return [(None, json.dumps({"id": f"{prefix}{i}", "text": f"Stock {i} {'unsure' if i % 5 == 0 else 'rallies'}"})
             .encode(), []) for i in range(n)]


def _id_counts(records) -> Counter:
    return Counter(json.loads(r.value)["id"] for r in records)


def _settings(bootstrap: str, prefix: str, **changes) -> KafkaSettings:
    return KafkaSettings(bootstrap=bootstrap, topic_prefix=prefix, group_id=f"{prefix}slm-sentiment",
                         delivery="exactly_once", group_instance_id="sentiment-0", max_batch=16, **changes)


def _read_committed(bootstrap: str, topic: str, until, timeout: float = 120) -> list:
    return drain(bootstrap, topic, until=until, timeout=timeout, isolation_level="read_committed")


def _before_each_commit(loop: TaskConsumerLoop, hook) -> None:
    """Run ``hook(offsets)`` before each of the loop's batch commits: where a fault is injected."""
    commit_batch = loop.checkpoint.commit

    def commit(consumer, producer, offsets):
        hook(offsets)
        commit_batch(consumer, producer, offsets)

    loop.checkpoint.commit = commit


def test_an_aborted_batch_is_consumed_again_and_read_committed_sees_each_answer_once(kafka_bootstrap, topic_prefix):
    topics = TaskTopics("sentiment", topic_prefix)
    loop = TaskConsumerLoop(FakeProcessor(), _settings(kafka_bootstrap, topic_prefix))
    failures = []

    def fail_once(offsets):
        # The batch's records are written (in the open transaction); the commit fails once, as a
        # broker failure at commit time would.
        if not failures:
            failures.append(dict(offsets))
            raise ProduceError("injected failure before the commit")

    _before_each_commit(loop, fail_once)
    expected = {f"{topic_prefix}{i}" for i in range(100)}
    produce(kafka_bootstrap, topics.requests, _requests(topic_prefix, 100))
    loop.start()
    try:
        results = _read_committed(kafka_bootstrap, topics.results, until=lambda r: set(_id_counts(r)) >= expected)
        wait_for(lambda: committed_total(kafka_bootstrap, loop.group_id) == 100, 60, what="the offsets' commit")
    finally:
        loop.stop()
    assert failures, "the injected failure must have happened"
    counts = _id_counts(results)
    assert set(counts) == expected and max(counts.values()) == 1, counts.most_common(3)
    review = _id_counts(_read_committed(kafka_bootstrap, topics.review, until=lambda r: len(r) >= 20))
    assert set(review) == {f"{topic_prefix}{i}" for i in range(0, 100, 5)} and max(review.values()) == 1
    # The aborted records were written: a read_uncommitted reader sees them twice.
    uncommitted = _id_counts(drain(kafka_bootstrap, topics.results, until=lambda r: len(r) > 100, timeout=30))
    assert sum(uncommitted.values()) > 100, "the aborted transaction's records must be in the log"


def test_a_zombie_is_fenced_and_its_open_transaction_never_becomes_visible(kafka_bootstrap, topic_prefix):
    topics = TaskTopics("sentiment", topic_prefix)
    settings = _settings(kafka_bootstrap, topic_prefix, session_timeout_ms=60_000)
    zombie, successor = TaskConsumerLoop(FakeProcessor(), settings), TaskConsumerLoop(FakeProcessor(), settings)
    paused, release = threading.Event(), threading.Event()

    def freeze(_offsets):
        # A process frozen (GC, SIGSTOP, a network partition) with its batch written but not committed.
        paused.set()
        release.wait(120)

    _before_each_commit(zombie, freeze)
    expected = {f"{topic_prefix}{i}" for i in range(50)}
    produce(kafka_bootstrap, topics.requests, _requests(topic_prefix, 50))
    zombie.start()
    try:
        assert paused.wait(90), "the zombie never reached its commit"
        # Same pod name, so the same static member and transactional id: the restarted container.
        successor.start()
        results = _read_committed(kafka_bootstrap, topics.results, until=lambda r: set(_id_counts(r)) >= expected)
        release.set()
        wait_for(lambda: not zombie.running, 60, what="the fenced zombie to stop")
    finally:
        release.set()
        zombie.stop()
        successor.stop()
    assert zombie.fenced
    assert successor.running is False and not successor.fenced
    counts = _id_counts(results)
    assert set(counts) == expected and max(counts.values()) == 1, counts.most_common(3)
    # Everything committed is in; the zombie's batch, written before the fence, stayed invisible.
    final = _id_counts(_read_committed(kafka_bootstrap, topics.results, until=lambda r: False, timeout=5))
    assert final == counts
    everything = _id_counts(drain(kafka_bootstrap, topics.results, until=lambda r: len(r) > 50, timeout=30))
    assert sum(everything.values()) > 50, "the zombie's uncommitted batch must be in the log, aborted"


def test_a_broker_restart_mid_stream_loses_nothing_and_duplicates_nothing(tmp_path, topic_prefix):
    from devtools import local_kafka
    from tests.support.kafka_io import private_broker

    cfg = private_broker(tmp_path / "kafka")
    local_kafka.up(cfg)
    bootstrap = local_kafka.bootstrap(cfg)
    topics = TaskTopics("sentiment", topic_prefix)
    loop = TaskConsumerLoop(FakeProcessor(), _settings(bootstrap, topic_prefix))
    expected = {f"{topic_prefix}{i}" for i in range(3000)}

    def committed() -> int:
        from kafka.errors import KafkaError

        try:
            return committed_total(bootstrap, loop.group_id)
        except KafkaError:
            return -1

    loop.start()
    try:
        produce(bootstrap, topics.requests, _requests(topic_prefix, 3000))
        # Mid-stream: some answers committed, not all (about 200 transactions of 16).
        wait_for(lambda: 0 < committed() < 3000, 60, interval=0.05, what="the stream under way")
        local_kafka.down(cfg)  # SIGTERM, then the same data folder again
        local_kafka.up(cfg)
        results = _read_committed(bootstrap, topics.results, until=lambda r: set(_id_counts(r)) >= expected,
                                  timeout=180)
    finally:
        loop.stop()
        local_kafka.down(cfg)
    counts = _id_counts(results)
    assert set(counts) == expected and max(counts.values()) == 1, counts.most_common(3)
