"""The pipelined consumer loop with fake clients: the model plans batch N in its own thread while the
loop's thread polls N+1; rebalances, stops and model failures in the middle of it.

The fake consumer serves a log (positions, seeks, a script of rebalances) and checks at every commit
that no offset is committed before its record's answer was sent. The model is gated by an event, so
"a batch is in the model" is a fact of the test, not a matter of timing.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field

import pytest
from kafka import TopicPartition

from shared.kafka import TaskConsumerLoop
from shared.kafka.settings import KafkaSettings
from tests.support.fakes import FakeProcessor

TOPIC = "sentiment.requests"
P0, P1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    value: bytes
    key: bytes | None = None
    headers: list = field(default_factory=list)
    timestamp: int = 0


class GatedProcessor(FakeProcessor):
    """The keyword fake; its first batch waits in the model until ``gate`` is set."""

    def __init__(self) -> None:
        self.entered, self.gate, self.calls = threading.Event(), threading.Event(), 0

    def process(self, items):
        self.calls += 1
        if self.calls == 1:
            self.entered.set()
            assert self.gate.wait(30), "the test never let the model finish"
        return super().process(items)


class Future:
    def __init__(self, error=None) -> None:
        self.exception = error

    def failed(self) -> bool:
        return self.exception is not None


class FakeProducer:
    """Acknowledges every send; a transaction's offsets are committed through the consumer's check."""

    def __init__(self, threads: set) -> None:
        self.sent: list[tuple[str, bytes | None, dict]] = []
        self.calls: list[str] = []
        self.threads = threads
        self.consumer: LogConsumer | None = None

    def _call(self, name: str) -> None:
        self.threads.add(threading.current_thread().name)
        self.calls.append(name)

    def send(self, topic, value=None, key=None, headers=None):
        self._call("send")
        self.sent.append((topic, value, dict(headers or [])))
        return Future()

    def flush(self):
        self._call("flush")

    def init_transactions(self):
        self._call("init")

    def begin_transaction(self):
        self._call("begin")

    def send_offsets_to_transaction(self, offsets, group_metadata):
        self._call("offsets")
        self.consumer.record_commit(offsets)

    def commit_transaction(self):
        self._call("commit")

    def abort_transaction(self):
        self._call("abort")

    def close(self, timeout=None):
        self._call("close")


def _answered(producer: FakeProducer) -> list[tuple[int, int]]:
    """(partition, offset) of each request answered, once per answer: by a result or a dead letter."""
    out = []
    for topic, value, headers in producer.sent:
        if topic.endswith(".results"):
            out.append(tuple(int(x) for x in json.loads(value)["id"].split("-")))
        elif topic.endswith(".dlq"):
            out.append((int(headers["source.partition"]), int(headers["source.offset"])))
    return out


class LogConsumer:
    """Serves a log (partition -> request values) from positions, a few records of each assigned
    partition per poll; ``script[n](consumer)`` runs inside the n-th poll, before it returns."""

    def __init__(self, loop: TaskConsumerLoop, sizes: dict[int, int], producer: FakeProducer, threads: set,
                 script: dict | None = None, max_polls: int = 5000) -> None:
        self.loop, self.producer, self.threads = loop, producer, threads
        producer.consumer = self
        self.log: dict[int, list[bytes]] = {p: [] for p in sizes}
        for p, n in sizes.items():
            self.grow(p, n)
        self.positions = {TopicPartition(TOPIC, p): 0 for p in sizes}
        self.assigned = set(self.positions)
        self.script, self.polls, self.max_polls = script or {}, 0, max_polls
        self.commits: list[dict] = []
        self.seeks: list[tuple[int, int]] = []
        self.closed = False

    def grow(self, partition: int, n: int) -> None:
        start = len(self.log[partition])
        self.log[partition] += [json.dumps({"id": f"{partition}-{o}", "text": f"up {o}"}).encode()
                                for o in range(start, start + n)]

    def poll(self, timeout_ms=0, max_records=None):
        self.threads.add(threading.current_thread().name)
        self.polls += 1
        if self.polls in self.script:
            self.script[self.polls](self)
        if self.polls >= self.max_polls or (self.polls > max(self.script, default=0) and self.done()):
            self.loop._stop.set()
        out: dict = {}
        assert max_records and max_records > 0
        each = max(1, max_records // max(1, len(self.assigned)))
        for tp in sorted(self.assigned):
            values = self.log[tp.partition][self.positions[tp]:self.positions[tp] + min(each, max_records)]
            if values:
                out[tp] = [Record(TOPIC, tp.partition, self.positions[tp] + i, v) for i, v in enumerate(values)]
                self.positions[tp] += len(values)
                max_records -= len(values)
            if max_records <= 0:
                break
        return out

    def done(self) -> bool:
        return all(self.committed(tp) == len(self.log[tp.partition]) for tp in self.assigned)

    def committed(self, tp) -> int:
        return max((c[tp] for c in self.commits if tp in c), default=0)

    def rebalance(self, revoked: set, assigned: set) -> None:
        """What kafka-python does inside ``poll``: the listener on revocation, then the new assignment.
        A partition kept through it keeps its position; a new one starts from its last commit."""
        asyncio.run(self.loop.checkpoint.commit_revoked(self.loop._on_partitions_revoked(revoked)))
        for tp in assigned - self.assigned:
            self.positions[tp] = self.committed(tp)
        self.assigned = set(assigned)
        self.loop._on_partitions_assigned(assigned)

    def seek(self, tp, offset):
        self.threads.add(threading.current_thread().name)
        assert tp in self.assigned
        self.seeks.append((tp.partition, offset))
        self.positions[tp] = offset

    def record_commit(self, offsets) -> None:
        """Refuse a commit of a partition not assigned, or past a request not yet answered."""
        answered = set(_answered(self.producer))
        for tp, meta in offsets.items():
            assert tp in self.assigned, f"committed {tp}, which is not this consumer's"
            missing = [o for o in range(meta.offset) if (tp.partition, o) not in answered]
            assert not missing, f"committed {tp.partition} up to {meta.offset} before answering offsets {missing}"
        self.commits.append({tp: meta.offset for tp, meta in offsets.items()})

    def commit_async(self, offsets, callback=None):
        from kafka.future import Future as KafkaFuture

        self.record_commit(offsets)
        return KafkaFuture().success(None)

    def commit(self, offsets, timeout_ms=None):
        self.threads.add(threading.current_thread().name)
        self.record_commit(offsets)

    def assignment(self):
        return set(self.assigned)

    def highwater(self, tp):
        return None

    def group_metadata(self):
        return "group-metadata"

    def close(self, autocommit=True):
        self.threads.add(threading.current_thread().name)
        self.closed = True


def _loop(processor, **settings) -> TaskConsumerLoop:
    return TaskConsumerLoop(processor, KafkaSettings(bootstrap="127.0.0.1:1", create_topics=False, max_batch=4,
                                                     **settings))


def _clients(loop: TaskConsumerLoop, sizes: dict[int, int], script: dict | None = None):
    threads: set = set()
    producer = FakeProducer(threads)
    consumer = LogConsumer(loop, sizes, producer, threads, script)
    loop._clients = lambda: (consumer, producer)
    return consumer, producer, threads


def _in_model(processor: GatedProcessor):
    def step(consumer):
        assert processor.entered.wait(30), "the first batch never reached the model"
    return step


def _grow(n: int):
    def step(consumer):
        for partition in consumer.log:
            consumer.grow(partition, n)
    return step


def _rebalance(processor: GatedProcessor, revoked: set, assigned: set):
    def step(consumer):
        consumer.rebalance(revoked, assigned)
        processor.gate.set()
    return step


def _steps(*steps):
    def step(consumer):
        for one in steps:
            one(consumer)
    return step


# Poll 1 returns batch N (P0 0-1, P1 0-1), which the model holds; poll 2 (once N is in the model) polls
# P0 2 and P1 2 ahead; the rebalance runs inside poll 3, N still in the model; more requests come after.
def _script(processor: GatedProcessor, revoked: set, assigned: set) -> dict:
    return {2: _steps(_in_model(processor), _grow(1)), 3: _rebalance(processor, revoked, assigned), 4: _grow(3)}


def test_a_revocation_while_a_batch_is_in_the_model_and_another_is_polled_ahead_commits_nothing_unprocessed():
    processor = GatedProcessor()
    loop = _loop(processor)
    consumer, producer, threads = _clients(loop, {0: 2, 1: 2}, _script(processor, revoked={P1}, assigned={P0}))
    loop.run()
    # P1 went to another member: none of its requests answered here (neither N's nor those polled ahead),
    # none of its offsets committed; P0's batch in the model was finished, and everything of P0 answered once.
    assert sorted(_answered(producer)) == [(0, o) for o in range(6)]
    assert all(P1 not in commit for commit in consumer.commits)
    assert consumer.committed(P0) == 6
    assert consumer.seeks == []
    assert threads == {threading.current_thread().name}, "every client call from the loop's thread"


def test_a_partition_given_straight_back_is_read_again_from_its_first_abandoned_record():
    processor = GatedProcessor()
    loop = _loop(processor)
    consumer, producer, _ = _clients(loop, {0: 2, 1: 2}, _script(processor, revoked={P0, P1}, assigned={P0, P1}))
    loop.run()
    # An eager rebalance revokes everything and gives it back with the positions past the abandoned records.
    assert sorted(consumer.seeks) == [(0, 0), (1, 0)]
    assert sorted(_answered(producer)) == [(p, o) for p in (0, 1) for o in range(6)], "once each, nothing lost"
    assert (consumer.committed(P0), consumer.committed(P1)) == (6, 6)


def test_stop_with_a_batch_in_the_model_commits_it_and_leaves_what_was_polled_ahead():
    processor = GatedProcessor()
    loop = _loop(processor)

    def stop(consumer):
        loop._stop.set()
        processor.gate.set()

    consumer, producer, _ = _clients(loop, {0: 10}, {2: _steps(_in_model(processor), stop)})
    loop.run()
    assert sorted(_answered(producer)) == [(0, o) for o in range(4)], "the batch in the model, nothing polled ahead"
    assert consumer.committed(P0) == 4
    assert consumer.closed


def _boom(partition: int, offset: int):
    def step(consumer):
        consumer.log[partition][offset] = json.dumps({"id": f"{partition}-{offset}", "text": "boom"}).encode()
    return step


def test_a_model_failure_is_dead_lettered_by_the_default_policy():
    loop = _loop(FakeProcessor())
    consumer, producer, _ = _clients(loop, {0: 6}, {1: _boom(0, 2)})
    loop.run()
    dead = [headers for topic, _, headers in producer.sent if topic.endswith(".dlq")]
    assert [(h["error.type"], h["source.offset"]) for h in dead] == [(b"processing_error", b"2")]
    assert sorted(_answered(producer)) == [(0, o) for o in range(6)]
    assert consumer.committed(P0) == 6


def test_a_model_failure_the_policy_does_not_dead_letter_is_raised_and_its_batch_not_committed():
    loop = _loop(FakeProcessor())
    loop.on_processing_error = lambda exc, record, logger: False
    consumer, producer, _ = _clients(loop, {0: 8}, {1: _boom(0, 5)})
    with pytest.raises(RuntimeError, match="model exploded"):
        loop.run()
    assert consumer.committed(P0) == 4, "the first batch only: the failed one is read again by the rebuilt clients"
    assert consumer.closed


def test_exactly_once_is_one_transaction_per_batch_in_the_loops_thread():
    processor = GatedProcessor()
    processor.gate.set()
    loop = _loop(processor, delivery="exactly_once", transactional_id="sentiment-0")
    consumer, producer, threads = _clients(loop, {0: 10})
    loop.run()
    transactions = [c for c in producer.calls if c in ("begin", "offsets", "commit", "abort")]
    assert transactions == ["begin", "offsets", "commit"] * 3, "batches of 4, 4 and 2, each its own transaction"
    assert sorted(_answered(producer)) == [(0, o) for o in range(10)]
    assert consumer.committed(P0) == 10
    assert threads == {threading.current_thread().name}


def test_a_model_that_hangs_stops_the_loop_coming_round_so_liveness_fails():
    processor = GatedProcessor()
    loop = _loop(processor, stuck_after_s=60, poll_timeout_ms=1)
    now = [1000.0]
    loop.health.clock = lambda: now[0]
    advanced = threading.Event()

    def an_hour_later(consumer):
        assert processor.entered.wait(30)
        now[0] += 3600  # polling ahead does not count as coming round: the model holds the batch
        advanced.set()

    _clients(loop, {0: 10}, {2: an_hour_later})
    loop._run_forever = loop.run
    loop.start()
    try:
        assert advanced.wait(30)
        assert not loop.is_alive()
    finally:
        processor.gate.set()
        loop.stop()
