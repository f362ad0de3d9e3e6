"""Kafka throughput of a task service as Ray Serve replicas: 1 replica against 2, same run.

Each configuration gets fresh topics (4 partitions) and its own consumer group on a local
Ray cluster (127.0.0.1); after a warm-up, N requests from the task's test set are produced
at once and the clock runs until the N-th result is on the results topic. Printed as
records/s and as a ratio to the first configuration (1 replica, 1 CPU).

    slm kafka up && python -m bench.replica_scaling [--task sentiment] [--records 2000]

The machine's cores bound it: replicas, the Serve proxy and the broker all share them, and
each replica's ONNX Runtime gets as many threads as the CPUs it requests.
"""

from __future__ import annotations

import argparse
import logging
import time
import uuid
from dataclasses import dataclass

from bench.harness import stream_through_kafka
from pipelines.labelled_rows import load_rows
from shared.kafka.groups import group_members
from shared.ray_settings import ReplicaSettings
from shared.settings import ServingSettings, default_model_dir

logger = logging.getLogger("bench.replica_scaling")


@dataclass(frozen=True)
class Config:
    replicas: int
    cpus: float

    @property
    def name(self) -> str:
        return f"{self.replicas} replica{'s' if self.replicas > 1 else ''} x {self.cpus:g} CPU"


CONFIGS = (Config(1, 1.0), Config(2, 1.0), Config(1, 2.0))


def run(config: Config, task: str, bootstrap: str, model_dir: str, texts: list[str], timeout: float) -> float:
    from ray import serve

    from shared.ray_replicas import task_application

    prefix = f"bench{uuid.uuid4().hex[:6]}."
    group = f"{prefix}slm-{task}"
    serving = ServingSettings.from_env(
        service={"model_dir": model_dir, "cache_size": 0},  # the warm-up's texts come back in the measured stream
        kafka={"bootstrap": bootstrap, "topic_prefix": prefix, "group_id": group, "partitions": 4})
    settings = ReplicaSettings(num_replicas=config.replicas, cpus_per_replica=config.cpus)
    serve.run(task_application(task, serving, settings, partitions=4, process_env={"OTEL_SDK_DISABLED": "true"}),
              name=task, route_prefix="/")
    deadline = time.monotonic() + 120
    while sum(1 for held in group_members(bootstrap, group).values() if held) != config.replicas:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{config.name}: the replicas did not all join {group}")
        time.sleep(1)
    requests = [{"text": text} for text in texts]
    stream_through_kafka(bootstrap, task, prefix, requests[:50], None, timeout)  # warm-up: sessions, caches
    result = stream_through_kafka(bootstrap, task, prefix, requests, None, timeout)
    serve.delete(task)
    if result["answered"] < result["records"]:
        raise TimeoutError(f"{config.name}: {result['answered']}/{result['records']} results after {timeout:.0f}s")
    return result["items_per_s"]


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

    from shared.ray_local import start_ray

    rows, _, _ = load_rows(args.task, None)
    texts = [r["text"] for r in rows]
    texts = (texts * (args.records // len(texts) + 1))[:args.records]
    model_dir = str(args.model or default_model_dir(args.task))
    start_ray(ReplicaSettings(), "127.0.0.1", args.http_port)
    cpus = ray.cluster_resources().get("CPU", 0)
    results = []
    try:
        for config in CONFIGS:
            rate = run(config, args.task, args.kafka, model_dir, texts, args.timeout)
            results.append((config, rate))
            print(f"{config.name:<24}{rate:>10.1f} records/s", flush=True)
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
