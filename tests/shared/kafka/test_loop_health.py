"""What the consumer loop tells the probes: readiness is REST's by default, liveness fails only
when a restart helps (fenced, or stuck past ``stuck_after_s``)."""

from __future__ import annotations

import threading

from shared.errors import ProducerFenced
from shared.kafka import TaskConsumerLoop
from shared.kafka.settings import KafkaSettings
from tests.support.fakes import FakeProcessor
from tests.support.processes import wait_for


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _loop(run, **settings) -> tuple[TaskConsumerLoop, Clock]:
    loop = TaskConsumerLoop(FakeProcessor(), KafkaSettings(bootstrap="127.0.0.1:1", create_topics=False, **settings))
    clock = Clock()
    loop.health.clock = clock
    loop.run = lambda: run(loop)
    return loop, clock


def test_by_default_a_loop_that_never_reaches_the_broker_leaves_rest_ready_and_alive():
    polling = threading.Event()

    def poll_a_dead_broker(loop):
        while not loop._stop.is_set():  # what run() does while the broker is down: come round, wait
            loop.health.came_round()
            polling.set()
            loop._stop.wait(0.05)

    loop, clock = _loop(poll_a_dead_broker)
    strict, _ = _loop(poll_a_dead_broker, unready_after_s=5)
    assert loop.is_alive(), "a loop never started has nothing to restart"
    loop.start()
    strict.start()
    try:
        assert polling.wait(10)
        clock.now += 3600  # an hour without the broker; the loop still comes round
        wait_for(loop.is_alive, 10, interval=0.01, what="the loop to come round again")
        assert loop.is_ready()
        assert loop.seconds_since_contact() is None
        assert loop.seconds_silent() >= 3600, "a broker down from the start is silence too (the gauge)"
        assert not strict.is_ready(), "unready_after_s > 0 waits for the group and the broker"
    finally:
        loop.stop()
        strict.stop()


def test_a_loop_stuck_past_its_limit_is_not_alive():
    entered, release = threading.Event(), threading.Event()

    def stuck(loop):
        loop.health.came_round()
        entered.set()
        release.wait(30)  # a call that never returns

    loop, clock = _loop(stuck, stuck_after_s=60)
    loop.start()
    try:
        assert entered.wait(10)
        clock.now += 59
        assert loop.is_alive()
        clock.now += 2
        assert not loop.is_alive()
        assert loop.is_ready(), "readiness is not liveness: the kubelet restarts the container"
    finally:
        release.set()
        loop.stop()


def test_a_fenced_loop_stops_and_is_neither_alive_nor_ready():
    def fenced(loop):
        raise ProducerFenced("fenced by a newer instance")

    loop, _ = _loop(fenced, delivery="exactly_once", group_instance_id="sentiment-0")
    loop.start()
    wait_for(lambda: not loop.running, 10, what="the fenced loop to stop")
    assert loop.fenced and not loop.is_alive() and not loop.is_ready()


def test_lag_skips_a_partition_whose_position_needs_the_broker():
    """In an outage ``position()`` waits for metadata and raises: the loop failed and rebuilt its
    clients every 30 s instead of waiting for the broker (found by test_kafka_outage.py)."""
    from kafka import TopicPartition

    from shared.kafka.consumer import partition_lag

    class OutageConsumer:
        def assignment(self):
            return {TopicPartition("t", 0), TopicPartition("t", 1), TopicPartition("t", 2)}

        def highwater(self, tp):
            return None if tp.partition == 2 else 100

        def position(self, tp, timeout_ms=None):
            if tp.partition == 1:
                raise TimeoutError("metadata refresh failed: broker unreachable")
            return 60

    assert partition_lag(OutageConsumer()) == {("t", 0): 40}  # partitions 1 and 2 unknown for now, not failed
