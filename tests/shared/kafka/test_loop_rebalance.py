"""The consumer loop's rebalance watchdog, with a scripted consumer and a fake clock."""

from __future__ import annotations

import pytest
from kafka import TopicPartition

from shared.errors import RebalanceStalled
from shared.kafka import TaskConsumerLoop
from shared.kafka.settings import KafkaSettings
from tests.support.fakes import FakeProcessor

PARTITIONS = {TopicPartition("sentiment.requests", p) for p in range(3)}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ScriptedConsumer:
    """Each poll runs the next step of a script (a callable), then returns no records."""

    def __init__(self, loop: TaskConsumerLoop, steps) -> None:
        self.loop, self.steps, self.closed = loop, list(steps), False

    def poll(self, timeout_ms=0, max_records=None):
        if not self.steps:
            self.loop._stop.set()
        else:
            self.steps.pop(0)()
        return {}

    def assignment(self):
        return set()

    def close(self, autocommit=True):
        self.closed = True


class IdleProducer:
    def close(self, timeout=None):
        pass


def _loop(clock: Clock, steps_for) -> tuple[TaskConsumerLoop, ScriptedConsumer]:
    loop = TaskConsumerLoop(FakeProcessor(), KafkaSettings(bootstrap="127.0.0.1:1", create_topics=False,
                                                           rebalance_stall_s=60))
    loop.health.clock = clock
    consumer = ScriptedConsumer(loop, steps_for(loop))
    loop._clients = lambda: (consumer, IdleProducer())
    return loop, consumer


def _advance(clock: Clock, seconds: float):
    def step():
        clock.now += seconds
    return step


def test_a_rebalance_that_never_assigns_rebuilds_the_clients():
    clock = Clock()
    loop, consumer = _loop(clock, lambda loop: [
        lambda: loop._on_partitions_assigned(PARTITIONS),
        lambda: loop._on_partitions_revoked(PARTITIONS),
        _advance(clock, 30),
        _advance(clock, 31),  # 61 s without an assignment
        _advance(clock, 1),
    ])
    with pytest.raises(RebalanceStalled, match="no assignment 61s after"):
        loop.run()
    assert consumer.closed
    assert consumer.steps, "the loop went on polling a consumer stuck in a rebalance"


def test_a_slow_rebalance_that_completes_keeps_the_clients():
    clock = Clock()
    loop, consumer = _loop(clock, lambda loop: [
        lambda: loop._on_partitions_revoked(set()),
        _advance(clock, 59),
        lambda: loop._on_partitions_assigned(PARTITIONS),
        _advance(clock, 600),  # idle for long after the assignment: not a stall
    ])
    loop.run()
    assert consumer.closed and not consumer.steps
    assert loop.assignment == PARTITIONS and loop.assignments == 1
    assert loop._joined_group.is_set()
