"""``slm serve`` as the README starts it (no member id set) killed with -9 and started again on the
same port: it rejoins as the same static member and answers at once, against a real broker."""

from __future__ import annotations

import json
import socket
import time

import pytest

from shared.kafka import TaskTopics
from shared.settings import local_instance_id
from tests.support.kafka_io import drain, produce
from tests.support.processes import ServiceProcess, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Long, so that a member that is not static (it waits for its dead predecessor's session to end)
# cannot answer within the 10 s the restart is given.
SESSION_TIMEOUT_MS = 90_000


def _request(prefix: str, i: int) -> tuple:
    return (None, json.dumps({"id": f"{prefix}{i}", "text": f"Shares of company {i} rally"}).encode(), [])


def _answered(prefix: str, i: int):
    return lambda records: f"{prefix}{i}" in {json.loads(r.value)["id"] for r in records}


def test_a_local_server_killed_with_sigkill_answers_within_10s_of_its_restart(
        quick_model_dir, tmp_path, kafka_bootstrap, topic_prefix):
    topics = TaskTopics("sentiment", topic_prefix)
    env = {"SLM_KAFKA_BOOTSTRAP": kafka_bootstrap, "SLM_KAFKA_TOPIC_PREFIX": topic_prefix,
           "SLM_KAFKA_GROUP_ID": f"{topic_prefix}slm-sentiment", "SLM_KAFKA_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS)}
    port = free_port()
    first = ServiceProcess("sentiment", quick_model_dir, tmp_path / "first.log", env=env, port=port).wait_ready()
    try:
        produce(kafka_bootstrap, topics.requests, [_request(topic_prefix, 0)])
        drain(kafka_bootstrap, topics.results, until=_answered(topic_prefix, 0), timeout=60)
    finally:
        first.kill()  # the server and its worker: no LeaveGroup, the broker still counts the member

    second = ServiceProcess("sentiment", quick_model_dir, tmp_path / "second.log", env=env, port=port)
    try:
        second.wait_ready()
        ready_at = time.monotonic()
        produce(kafka_bootstrap, topics.requests, [_request(topic_prefix, 1)])
        drain(kafka_bootstrap, topics.results, until=_answered(topic_prefix, 1), timeout=60)
        answered_after = time.monotonic() - ready_at
    finally:
        second.terminate()
    assert answered_after < 10, f"first result {answered_after:.1f} s after /readyz"
    member = local_instance_id("127.0.0.1", port, socket.gethostname())
    assert f"member={member} " in first.log() and f"member={member} " in second.log()
