"""Kafka throughput of a task service as Ray Serve replicas: 1 replica against 2, same run.

Each configuration gets fresh topics (4 partitions) and its own consumer group on a local
Ray cluster (127.0.0.1); after a warm-up, N requests from the task's test set are produced
at once and the clock runs until the N-th result is on the results topic. Printed as
records/s and as a ratio to the first configuration (1 replica, 1 CPU).

    slm kafka up && python -m bench.replicas [--task sentiment] [--records 2000]

The machine's cores bound it: replicas, the Serve proxy and the broker all share them, and
each replica's ONNX Runtime gets as many threads as the CPUs it requests.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import uuid
from dataclasses import dataclass

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from shared.kafka import TaskTopics
from shared.settings import ReplicaSettings, default_model_dir
from slm.demo import load_rows

logger = logging.getLogger("bench.replicas")


@dataclass(frozen=True)
class Config:
    replicas: int
    cpus: float

    @property
    def name(self) -> str:
        return f"{self.replicas} replica{'s' if self.replicas > 1 else ''} x {self.cpus:g} CPU"


CONFIGS = (Config(1, 1.0), Config(2, 1.0), Config(1, 2.0))


def _group_size(bootstrap: str, group: str) -> int:
    """Members of a stable group holding at least one partition."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        described = admin.describe_groups([group]).get(group, {})
    except Exception:  # noqa: BLE001 - not created yet
        return 0
    finally:
        admin.close()
    if described.get("group_state") != "Stable":
        return 0
    return sum(1 for m in described.get("members", []) if (m.get("member_assignment") or {}).get("assigned_partitions"))


def _timed_stream(bootstrap: str, topics: TaskTopics, texts: list[str], timeout: float) -> float:
    """Seconds from the first request produced to the last result read."""
    consumer = KafkaConsumer(topics.results, bootstrap_servers=bootstrap, auto_offset_reset="latest",
                             enable_auto_commit=False, group_id=None)
    while not consumer.assignment():
        consumer.poll(timeout_ms=200)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    started = time.perf_counter()
    for i, text in enumerate(texts):
        producer.send(topics.requests, key=str(i).encode(), value=json.dumps({"id": f"b{i}", "text": text}).encode())
    producer.flush()
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    try:
        while len(seen) < len(texts) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                seen.update(json.loads(r.value)["id"] for r in batch)
    finally:
        producer.close()
        consumer.close()
    if len(seen) < len(texts):
        raise TimeoutError(f"{len(seen)}/{len(texts)} results after {timeout:.0f}s")
    return time.perf_counter() - started


def run(config: Config, task: str, bootstrap: str, model_dir: str, texts: list[str], timeout: float) -> float:
    from ray import serve

    from shared.ray_replicas import task_application

    prefix = f"bench{uuid.uuid4().hex[:6]}."
    group = f"{prefix}slm-{task}"
    env = {"SLM_MODEL_DIR": model_dir, "SLM_KAFKA_BOOTSTRAP": bootstrap, "SLM_KAFKA_TOPIC_PREFIX": prefix,
           "SLM_KAFKA_GROUP_ID": group, "SLM_KAFKA_PARTITIONS": "4", "OTEL_SDK_DISABLED": "true"}
    settings = ReplicaSettings(num_replicas=config.replicas, cpus_per_replica=config.cpus)
    serve.run(task_application(task, env, settings, partitions=4), name=task, route_prefix="/")
    deadline = time.monotonic() + 120
    while _group_size(bootstrap, group) != config.replicas:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{config.name}: the replicas did not all join {group}")
        time.sleep(1)
    topics = TaskTopics(task, prefix)
    _timed_stream(bootstrap, topics, texts[:50], timeout)  # warm-up: sessions, tokenizer caches
    seconds = _timed_stream(bootstrap, topics, texts, timeout)
    serve.delete(task)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="sentiment")
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--kafka", default="127.0.0.1:9092")
    parser.add_argument("--model", default=None, help="model folder (default models/<task>)")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--http-port", type=int, default=8000, help="Serve's HTTP proxy (REST is not measured)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    import ray
    from ray import serve

    from slm.replicas import start_ray

    rows, _, _ = load_rows(args.task, None)
    texts = [r["text"] for r in rows]
    texts = (texts * (args.records // len(texts) + 1))[:args.records]
    model_dir = str(args.model or default_model_dir(args.task))
    start_ray(ReplicaSettings(), "127.0.0.1", args.http_port)
    cpus = ray.cluster_resources().get("CPU", 0)
    results = []
    try:
        for config in CONFIGS:
            seconds = run(config, args.task, args.kafka, model_dir, texts, args.timeout)
            results.append((config, len(texts) / seconds))
            print(f"{config.name:<24}{len(texts) / seconds:>10.1f} records/s", flush=True)
    finally:
        serve.shutdown()
        ray.shutdown()
    base = results[0][1]
    print(f"\n{args.task}, {len(texts)} records through Kafka, Ray Serve replicas on {cpus:.0f} CPUs")
    print(f"{'configuration':<24}{'records/s':>10}{'ratio':>8}")
    for config, rate in results:
        print(f"{config.name:<24}{rate:>10.1f}{rate / base:>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
