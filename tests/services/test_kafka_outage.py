"""A broker outage takes Kafka's work away, not REST's: the service stays Ready and alive,
answers /predict throughout, and the Kafka loop resumes when the broker is back."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from shared.kafka import TaskTopics
from devtools import local_kafka
from tests.support.kafka_io import drain, private_broker, produce
from tests.support.processes import ServiceProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OLD_UNREADY_AFTER_S = 10  # readiness followed the broker after this long before REST-first readiness


def _requests(prefix: str, ids) -> list:
    return [(None, json.dumps({"id": f"{prefix}{i}", "text": f"Stock {i} rallies"}).encode(), []) for i in ids]


def _ids(records) -> set[str]:
    return {json.loads(r.value)["id"] for r in records}


def test_rest_stays_ready_through_a_broker_outage_and_kafka_resumes_after(quick_model_dir, tmp_path, topic_prefix):
    cfg = private_broker(tmp_path / "kafka")
    local_kafka.up(cfg)
    bootstrap = local_kafka.bootstrap(cfg)
    topics = TaskTopics("sentiment", topic_prefix)
    env = {"SLM_KAFKA_BOOTSTRAP": bootstrap, "SLM_KAFKA_TOPIC_PREFIX": topic_prefix,
           "SLM_KAFKA_GROUP_ID": f"{topic_prefix}slm-sentiment", "SLM_KAFKA_GROUP_INSTANCE_ID": "sentiment-0"}
    service = None
    try:
        service = ServiceProcess("sentiment", quick_model_dir, tmp_path / "serve.log", env=env).wait_ready()
        produce(bootstrap, topics.requests, _requests(topic_prefix, range(5)))
        assert len(_ids(drain(bootstrap, topics.results, until=lambda r: len(_ids(r)) >= 5, timeout=90))) == 5
        local_kafka.down(cfg)
        down_at = time.monotonic()
        wait_for(lambda: "broker unreachable" in service.log() and time.monotonic() - down_at > OLD_UNREADY_AFTER_S + 5,
                 90, what="the loop to report the outage, past the old readiness limit")
        for path in ("/readyz", "/livez", "/healthz"):
            assert httpx.get(f"{service.url}{path}", timeout=10).status_code == 200, path
        answer = httpx.post(f"{service.url}/predict", json={"items": [{"id": "rest-1", "text": "Shares rally"}]},
                            timeout=30)
        assert answer.status_code == 200 and answer.json()[0]["id"] == "rest-1"
        local_kafka.up(cfg)
        produce(bootstrap, topics.requests, _requests(topic_prefix, range(5, 10)))
        results = drain(bootstrap, topics.results, until=lambda r: len(_ids(r)) >= 10, timeout=120)
        assert _ids(results) == {f"{topic_prefix}{i}" for i in range(10)}
    finally:
        if service is not None:
            assert service.terminate() == 0
        local_kafka.down(cfg)
