"""Recovery of the consumer loop: a kill -9 restart (static membership) and a broker outage
(readiness follows the broker), against real brokers and real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from devtools import local_kafka
from shared.kafka import TaskConsumerLoop, TaskTopics
from shared.kafka.settings import KafkaSettings
from tests.support.fakes import FakeProcessor
from tests.support.kafka_io import drain, produce
from tests.support.processes import REPO_ROOT, free_port, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SESSION_TIMEOUT_MS = 90_000  # a dynamic member would wait it out; half of it is the budget


def _requests(prefix: str, ids) -> list:
    return [(None, json.dumps({"id": f"{prefix}{i}", "text": f"Stock {i} rallies"}).encode(), []) for i in ids]


def _ids(records) -> set[str]:
    return {json.loads(r.value)["id"] for r in records}


class _LoopProcess:
    def __init__(self, env: dict[str, str], ready_file) -> None:
        self.ready_file = ready_file
        ready_file.unlink(missing_ok=True)
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.support.loop_process", str(ready_file)],
                                     cwd=REPO_ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

    def ready(self) -> bool:
        assert self.proc.poll() is None, f"loop process exited with {self.proc.returncode}"
        return self.ready_file.exists()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)


def test_a_static_member_killed_with_sigkill_is_back_at_work_well_within_its_session_timeout(
        kafka_bootstrap, topic_prefix, tmp_path):
    topics = TaskTopics("sentiment", topic_prefix)
    env = {"SLM_KAFKA_BOOTSTRAP": kafka_bootstrap, "SLM_KAFKA_TOPIC_PREFIX": topic_prefix,
           "SLM_KAFKA_GROUP_ID": f"{topic_prefix}slm-sentiment", "SLM_KAFKA_GROUP_INSTANCE_ID": "sentiment-0",
           "SLM_KAFKA_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS), "OTEL_SDK_DISABLED": "true"}
    first = _LoopProcess(env, tmp_path / "ready-1")
    try:
        wait_for(first.ready, 90, what="the first loop process")
        produce(kafka_bootstrap, topics.requests, _requests(topic_prefix, range(10)))
        drain(kafka_bootstrap, topics.results, until=lambda r: len(_ids(r)) >= 10, timeout=60)
    finally:
        first.kill()  # no shutdown hook, no LeaveGroup: the broker still counts it as a member
    restarted_at = time.monotonic()
    second = _LoopProcess(env, tmp_path / "ready-2")
    try:
        wait_for(second.ready, 90, what="the restarted loop process")
        ready_at = time.monotonic()
        produce(kafka_bootstrap, topics.requests, _requests(topic_prefix, range(10, 20)))
        drain(kafka_bootstrap, topics.results, until=lambda r: f"{topic_prefix}10" in _ids(r), timeout=90)
        answered_at = time.monotonic()
    finally:
        second.kill()
    # A dynamic member would wait for its dead predecessor's session to expire (30 s here) first.
    assert answered_at - restarted_at < SESSION_TIMEOUT_MS / 1000 / 2, answered_at - restarted_at
    assert answered_at - ready_at < 10


def test_readiness_follows_the_broker_through_an_outage(tmp_path, topic_prefix):
    cache = local_kafka.BrokerConfig.from_env().cache_dir
    port = free_port()
    cfg = local_kafka.BrokerConfig(port=port, controller_port=free_port(), cache_dir=cache, data_dir=tmp_path / "kafka")
    local_kafka.up(cfg)
    bootstrap = local_kafka.bootstrap(cfg)
    topics = TaskTopics("sentiment", topic_prefix)
    loop = TaskConsumerLoop(FakeProcessor(), KafkaSettings(
        bootstrap=bootstrap, topic_prefix=topic_prefix, group_id=f"{topic_prefix}slm-sentiment",
        health_interval_s=1.0, unready_after_s=5.0))
    loop.start()
    try:
        assert loop.wait_ready(90)
        wait_for(loop.is_ready, 30, what="readiness before the outage")
        local_kafka.down(cfg)
        down_at = time.monotonic()
        wait_for(lambda: not loop.is_ready(), 30, what="readiness to drop while the broker is down")
        assert time.monotonic() - down_at < 25  # unready_after_s is 10
        assert loop.running, "the loop must outlive the outage, only readiness drops"
        local_kafka.up(cfg)
        up_at = time.monotonic()
        wait_for(loop.is_ready, 60, what="readiness after the broker is back")
        produce(bootstrap, topics.requests, _requests(topic_prefix, range(5)))
        results = drain(bootstrap, topics.results, until=lambda r: len(_ids(r)) >= 5, timeout=60)
        assert _ids(results) == {f"{topic_prefix}{i}" for i in range(5)}
        assert time.monotonic() - up_at < 45, "answers must resume soon after the broker's return"
    finally:
        loop.stop()
        local_kafka.down(cfg)


def test_a_static_member_that_stops_gracefully_hands_its_partitions_over_at_once(kafka_bootstrap, topic_prefix):
    """Static members send no LeaveGroup on close (KIP-345): without the explicit removal, a
    scale-down would leave the stopped member's partitions unserved for a whole session."""
    def settings(member: str) -> KafkaSettings:
        return KafkaSettings(bootstrap=kafka_bootstrap, topic_prefix=topic_prefix, group_id=f"{topic_prefix}slm-sentiment",
                             group_instance_id=member, session_timeout_ms=SESSION_TIMEOUT_MS, partitions=2)

    leaving, staying = TaskConsumerLoop(FakeProcessor(), settings("a")), TaskConsumerLoop(FakeProcessor(), settings("b"))
    leaving.start()
    try:
        assert leaving.wait_ready(60)
        staying.start()
        wait_for(lambda: len(leaving.assignment) == 1 and len(staying.assignment) == 1, 60,
                 what="the partitions shared by both members")
        leaving.stop()
        stopped_at = time.monotonic()
        wait_for(lambda: len(staying.assignment) == 2, SESSION_TIMEOUT_MS / 1000,
                 what="the remaining member to take both partitions")
        assert time.monotonic() - stopped_at < SESSION_TIMEOUT_MS / 1000 / 2
    finally:
        leaving.stop()
        staying.stop()
