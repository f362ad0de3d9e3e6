"""A task service as Ray Serve replicas on one local Ray cluster (127.0.0.1) for the session.

The replicas run the sentiment quick model on the real broker: they share a 4-partition
topic as members of one consumer group, REST through Serve's proxy answers exactly as
``bentoml serve`` does, a replica removed mid-stream loses nothing, and the autoscaling
policy takes the deployment from 1 to 2 replicas under load and back.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import Counter

import httpx
import pytest

from shared.kafka import TaskTopics
from shared.ray_settings import ReplicaSettings
from shared.settings import ServingSettings
from pipelines.labelled_rows import load_rows
from tests.support.kafka_io import committed_total, drain, group_members, produce
from tests.support.processes import ServiceProcess, free_port, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TASK = "sentiment"
APP = "sentiment"
DEPLOYMENT = f"slm-{TASK}"
VOLATILE = {"received_at", "latency_ms"}  # differ between any two answers
# Dynamic int8 quantization scales each run's activations over the whole batch, so a score
# moves a little with the batch it was computed in. With the response cache on, a repeated
# item is answered as first computed, and two runtimes that routed it into different batches
# (two replicas against one process) would differ by that much. Off for the comparison.
NO_CACHE = {"SLM_CACHE_SIZE": "0"}


@pytest.fixture(scope="module")
def serve_url():
    """A local Ray cluster and Serve's HTTP proxy, for this module; stopped after it."""
    import ray
    from ray import serve

    from shared.ray_local import start_ray

    port = free_port()
    start_ray(ReplicaSettings(), "127.0.0.1", port)
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()
    ray.shutdown()


def _settings(model_dir, kafka_bootstrap: str, prefix: str) -> ServingSettings:
    return ServingSettings.from_env(service={"model_dir": model_dir, "cache_size": 0}, kafka={
        "bootstrap": kafka_bootstrap, "topic_prefix": prefix, "group_id": f"{prefix}slm-{TASK}", "partitions": 4,
        "max_batch": 16})


def _deploy(settings: ServingSettings, replicas: ReplicaSettings, partitions: int | None = 4,
            telemetry: bool = False) -> None:
    from ray import serve

    from shared.ray_replicas import task_application

    process_env = {"OTEL_SDK_DISABLED": "false" if telemetry else "true"}
    serve.run(task_application(TASK, settings, replicas, partitions, process_env=process_env),
              name=APP, route_prefix="/")


def _running_replicas() -> int:
    from ray import serve

    status = serve.status().applications[APP].deployments[DEPLOYMENT]
    return status.replica_states.get("RUNNING", 0)


def _requests(start: int, count: int) -> list[tuple[bytes, bytes, list]]:
    return [(f"k{i}".encode(), json.dumps({"id": f"r{i}", "text": f"Company {i} shares jump after earnings"}).encode(),
             []) for i in range(start, start + count)]


@pytest.fixture(scope="module")
def two_replicas(serve_url, quick_model_dir, kafka_bootstrap):
    """Two replicas of the sentiment service in group ``<prefix>slm-sentiment`` on 4 partitions."""
    prefix = f"ray{id(serve_url) % 10**6}."
    settings = _settings(quick_model_dir, kafka_bootstrap, prefix)
    _deploy(settings, ReplicaSettings(num_replicas=2, cpus_per_replica=0.5))
    group = f"{prefix}slm-{TASK}"
    wait_for(lambda: len(group_members(kafka_bootstrap, group)) == 2, 120, interval=1,
             what="two replicas in the consumer group")
    return prefix, settings, group


def test_two_replicas_share_the_partitions_and_answer_each_request_once(two_replicas, kafka_bootstrap):
    prefix, _, group = two_replicas
    members = group_members(kafka_bootstrap, group)
    assert len(members) == 2
    assert all(members.values()), f"a replica holds no partition: {members}"
    assert sorted(itertools.chain.from_iterable(members.values())) == [0, 1, 2, 3]

    topics = TaskTopics(TASK, prefix)
    produce(kafka_bootstrap, topics.requests, _requests(0, 200))
    results = drain(kafka_bootstrap, topics.results, until=lambda r: len(r) >= 200)
    ids = Counter(json.loads(r.value)["id"] for r in results)
    assert set(ids) == {f"r{i}" for i in range(200)}
    assert max(ids.values()) == 1, f"answered twice: {[k for k, v in ids.items() if v > 1][:5]}"
    wait_for(lambda: committed_total(kafka_bootstrap, group) == 200, 30, what="offsets committed")


def test_rest_through_serve_equals_bentoml_serve(two_replicas, serve_url, quick_model_dir, tmp_path):
    requests, _, _ = load_rows(TASK, 12)
    items = [{"id": f"q{i}", **r} for i, r in enumerate(requests)]
    bento = ServiceProcess(TASK, quick_model_dir, tmp_path / "serve.log",
                           env={"SLM_ONNX_THREADS": "1", "SLM_KAFKA_BOOTSTRAP": "", **NO_CACHE}).wait_ready()
    try:
        for body in ({"items": items}, {"items": items[:1]}, {"items": [{"text": "  "}]}, {"items": []},
                     {"items": [{"text": "ok", "colour": "red"}]}):
            ours = httpx.post(f"{serve_url}/predict", json=body, timeout=60)
            theirs = httpx.post(f"{bento.url}/predict", json=body, timeout=60)
            assert ours.status_code == theirs.status_code, (body, ours.text, theirs.text)
            if ours.status_code != 200:
                assert ours.status_code == 422 and ours.json() == theirs.json()
                continue
            for a, b in zip(ours.json(), theirs.json(), strict=True):
                assert {k: v for k, v in a.items() if k not in VOLATILE | {"score", "scores", "top"}} == \
                       {k: v for k, v in b.items() if k not in VOLATILE | {"score", "scores", "top"}}
                assert a["score"] == pytest.approx(b["score"], abs=1e-5)
                assert [t["label"] for t in a["top"]] == [t["label"] for t in b["top"]]
        assert httpx.get(f"{serve_url}/docs.json").json() == httpx.get(f"{bento.url}/docs.json").json()
        assert httpx.get(f"{serve_url}/readyz").status_code == 200
    finally:
        assert bento.terminate() == 0


def test_a_replica_removed_mid_stream_loses_nothing(two_replicas, kafka_bootstrap):
    prefix, settings, group = two_replicas
    topics = TaskTopics(TASK, prefix)
    before = committed_total(kafka_bootstrap, group)
    produce(kafka_bootstrap, topics.requests, _requests(1000, 300))
    drain(kafka_bootstrap, topics.results, until=lambda r: len(r) >= before + 50)  # the stream is flowing
    _deploy(settings, ReplicaSettings(num_replicas=1, cpus_per_replica=0.5))  # Serve stops one replica
    produce(kafka_bootstrap, topics.requests, _requests(1300, 300))

    expected = {f"r{i}" for i in range(1000, 1600)}
    results = drain(kafka_bootstrap, topics.results,
                    until=lambda r: expected <= {json.loads(x.value)["id"] for x in r})
    ids = Counter(json.loads(r.value)["id"] for r in results)
    assert expected <= set(ids), f"lost: {sorted(expected - set(ids))[:10]}"
    assert all(ids[i] == 1 for i in expected), "a record was answered twice across the scale-down"
    wait_for(lambda: committed_total(kafka_bootstrap, group) == before + 600, 30, what="offsets committed")
    wait_for(lambda: list(group_members(kafka_bootstrap, group).values()) == [frozenset({0, 1, 2, 3})], 60,
             interval=1, what="the remaining replica holding all four partitions")
    assert _running_replicas() == 1


def test_autoscaling_goes_to_two_replicas_while_requests_are_in_flight_and_back_to_one(serve_url, quick_model_dir,
                                                                                          kafka_bootstrap):
    """The test decides the load, not the machine: requests whose bodies it holds open are in flight
    (ongoing, for Serve's autoscaler) for exactly as long as it holds them, and take no CPU, so the
    replica count follows them however busy the machine is."""
    settings = _settings(quick_model_dir, kafka_bootstrap, f"ras{id(serve_url) % 10**6}.")
    settings = settings.replace(service={"body_read_timeout_s": 600})
    _deploy(settings, ReplicaSettings(min_replicas=1, max_replicas=2, target_ongoing_requests=1, upscale_delay_s=0,
                                      downscale_delay_s=2, cpus_per_replica=0.5))
    assert _running_replicas() == 1
    held = 4
    release = threading.Event()
    statuses: list[int] = []

    def post(k: int) -> None:
        body = json.dumps({"items": [{"id": f"held{k}", "text": "Shares rally after earnings"}]}).encode()

        def held_body():
            yield body[:1]
            release.wait(600)
            yield body[1:]

        with httpx.Client(timeout=660) as client:
            statuses.append(client.post(f"{serve_url}/predict", content=held_body(),
                                        headers={"content-type": "application/json"}).status_code)

    posts = [threading.Thread(target=post, args=(k,), daemon=True) for k in range(held)]
    for thread in posts:
        thread.start()
    try:
        wait_for(lambda: _running_replicas() == 2, 300, interval=1,
                 what=f"a second replica while {held} requests are in flight (target 1 each)")
    finally:
        release.set()
        for thread in posts:
            thread.join(120)
    assert statuses == [200] * held
    wait_for(lambda: _running_replicas() == 1, 120, interval=1, what="back to one replica with nothing in flight")


def test_replica_metrics_reach_rays_metrics_port_as_prometheus_scrapes_it(serve_url, quick_model_dir):
    """Redeploys one replica with telemetry on and no Kafka; Ray's agent exports what the replica
    records on the node's metrics port, where the chart's ServiceMonitor scrapes."""
    import ray
    from prometheus_client.parser import text_string_to_metric_families

    settings = ServingSettings.from_env(service={"model_dir": quick_model_dir}, kafka={"bootstrap": None})
    _deploy(settings, ReplicaSettings(num_replicas=1, cpus_per_replica=0.5), partitions=None, telemetry=True)
    for text in ("Gold rallies", "Oil slips", "Banks steady"):
        assert httpx.post(f"{serve_url}/predict", json={"items": [{"text": text}]}, timeout=60).status_code == 200
    port = ray._private.worker._global_node.metrics_export_port

    def rest_requests() -> float:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
                   if sample.name == "ray_slm_requests_total" and sample.labels.get("path") == "rest"
                   and sample.labels.get("task") == TASK)

    wait_for(lambda: rest_requests() == 3, 60, interval=1, what="ray_slm_requests_total on Ray's metrics port")
    # The replica's own /metrics, through the ingress, has them too (one replica's view).
    assert "slm_requests_total{" in httpx.get(f"{serve_url}/metrics", timeout=10).text


def test_the_ray_serve_ingress_requires_api_keys_like_bentoml_serve(serve_url, quick_model_dir, tmp_path):
    """Last in the module: it redeploys the application with API keys on and no Kafka."""
    from tests.services.test_api_keys_http import check_api_keys, write_keys

    keys_file = tmp_path / "api-keys"
    write_keys(keys_file, "first-key")
    settings = ServingSettings.from_env(service={"model_dir": quick_model_dir, "api_keys_file": keys_file},
                                        kafka={"bootstrap": None})
    _deploy(settings, ReplicaSettings(num_replicas=1, cpus_per_replica=0.5), partitions=None)
    check_api_keys(serve_url, keys_file)
