"""``slm bench``: each task service against its model's own limit, measured in one run.

For every task:

- **limit**: the int8 ONNX model alone (tokenizer + ONNX Runtime, batches sorted by length),
  items/s at several batch sizes, the best one kept; the fp32 ONNX graph the same way;
- **REST**: ``slm serve <task>`` on loopback, single-item and 16-item requests from an
  asyncio load generator at concurrency 1, 8, 32, 128: items/s and p50/p95/p99 latency;
- **Kafka**: K requests produced at once, time until the K-th result; then the same at 50%
  of that rate, paced, for per-message latency (result timestamp minus request timestamp);
- **cold start** (process start to ``/readyz``) and **resident memory** of the service.

Writes ``results.json``, ``results.md`` (ratios to the int8 limit of the same run) and
``rest.png`` (items/s and p50/p99 against concurrency) to ``--out``.

Not measured yet (issue 6): the peers (FastAPI + transformers pipeline, BentoML torch service,
Ray Serve ``@serve.batch``) and fp32 torch, which need the fine-tuned weights in torch form.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from shared.settings import REPO_ROOT, default_model_dir

__all__ = ["BenchPlan", "run_bench", "stream_through_kafka"]

logger = logging.getLogger(__name__)


@dataclass
class BenchPlan:
    tasks: list[str]
    out: Path
    bootstrap: str
    quick: bool = False
    concurrencies: list[int] = field(default_factory=lambda: [1, 8, 32, 128])
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8, 32, 64])
    rest_seconds: float = 15.0
    limit_items: int = 2000
    kafka_records: int = 2000

    @classmethod
    def for_run(cls, tasks: list[str], out: Path, bootstrap: str, quick: bool) -> "BenchPlan":
        if not quick:
            return cls(tasks, out, bootstrap)
        return cls(tasks, out, bootstrap, quick=True, concurrencies=[1, 32], batch_sizes=[1, 32], rest_seconds=4,
                   limit_items=300, kafka_records=300)


def _percentiles(values_ms: list[float]) -> dict:
    if not values_ms:
        return {"p50": None, "p95": None, "p99": None}
    p50, p95, p99 = np.percentile(values_ms, [50, 95, 99])
    return {"p50": round(float(p50), 2), "p95": round(float(p95), 2), "p99": round(float(p99), 2)}


def _model_inputs(task: str, model_dir: Path, requests: list[dict]) -> list[str]:
    from shared.runtime import read_model_info
    from shared.tasks import model_text

    info = read_model_info(model_dir)
    if info.kind == "entities":
        return [r["text"] for r in requests]
    fields = info.columns.get("fields", [])
    return [model_text(r["text"], r.get("fields", {}), fields) for r in requests]


def measure_limit(task: str, model_dir: Path, texts: list[str], batch_sizes: list[int], onnx_file: str) -> dict:
    """Items/s of the model alone, one thread per core the machine has, by batch size."""
    from shared.runtime import OnnxEntityRecognizer, OnnxTextClassifier, read_model_info

    kind = read_model_info(model_dir).kind
    by_batch = {}
    for batch in batch_sizes:
        if kind == "entities":
            model = OnnxEntityRecognizer(model_dir, max_batch_size=batch, onnx_file=onnx_file)
            run = model.predict
        else:
            model = OnnxTextClassifier(model_dir, max_batch_size=batch, onnx_file=onnx_file)
            run = model.predict_proba
        run(texts[:batch])  # warm-up
        started = time.perf_counter()
        for start in range(0, len(texts), batch * 8):  # several batches per call, as a stream arrives
            run(texts[start:start + batch * 8])
        by_batch[batch] = round(len(texts) / (time.perf_counter() - started), 1)
    best = max(by_batch, key=by_batch.get)
    return {"items_per_s": by_batch[best], "best_batch": best, "by_batch": by_batch}


async def _rest_load(url: str, bodies: list[dict], concurrency: int, seconds: float) -> dict:
    latencies: list[float] = []
    items = errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def worker(client: httpx.AsyncClient, offset: int) -> None:
        nonlocal items, errors
        i = offset
        while time.perf_counter() < deadline:
            body = bodies[i % len(bodies)]
            i += concurrency
            started = time.perf_counter()
            try:
                response = await client.post(url, json=body)
            except httpx.HTTPError:  # a connection the overloaded server dropped: an error, not the end
                errors += 1
                continue
            if response.status_code == 200:
                latencies.append((time.perf_counter() - started) * 1000)
                items += len(body["items"])
            else:
                errors += 1

    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client, k) for k in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"concurrency": concurrency, "items_per_s": round(items / elapsed, 1), "requests": len(latencies),
            "errors": errors, **_percentiles(latencies)}


def measure_rest(url: str, requests: list[dict], plan: BenchPlan) -> dict:
    singles = [{"items": [{"id": str(i), **r}]} for i, r in enumerate(requests)]
    batches = [{"items": [{"id": f"{i}-{k}", **r} for k, r in enumerate(requests[i:i + 16])]}
               for i in range(0, len(requests) - 16, 16)]
    return {
        "single": [asyncio.run(_rest_load(url, singles, c, plan.rest_seconds)) for c in plan.concurrencies],
        "batch16": [asyncio.run(_rest_load(url, batches, c, plan.rest_seconds)) for c in plan.concurrencies[:2]],
    }


def stream_through_kafka(bootstrap: str, task: str, prefix: str, requests: list[dict], rate: float | None,
                         timeout: float) -> dict:
    """Produce the requests (paced at ``rate``/s when given); items/s and per-message latency."""
    from kafka import KafkaConsumer, KafkaProducer

    from shared.kafka import TaskTopics

    topics = TaskTopics(task, prefix)
    consumer = KafkaConsumer(topics.results, bootstrap_servers=bootstrap, auto_offset_reset="latest",
                             enable_auto_commit=False, group_id=None)
    while not consumer.assignment():
        consumer.poll(timeout_ms=200)
    consumer.poll(timeout_ms=200)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    run = uuid.uuid4().hex[:6]
    sent_at: dict[str, int] = {}
    latencies: list[float] = []
    started = time.perf_counter()
    for i, request in enumerate(requests):
        if rate:
            wait = started + i / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        rid = f"{run}-{i}"
        sent_at[rid] = int(time.time() * 1000)
        producer.send(topics.requests, key=rid.encode(), value=json.dumps({"id": rid, **request}).encode(),
                      timestamp_ms=sent_at[rid])
    producer.flush()
    deadline = time.monotonic() + timeout
    while len(latencies) < len(requests) and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            for record in batch:
                rid = json.loads(record.value)["id"]
                if rid in sent_at:
                    latencies.append(record.timestamp - sent_at.pop(rid))
    elapsed = time.perf_counter() - started
    producer.close()
    consumer.close()
    return {"records": len(requests), "answered": len(latencies), "items_per_s": round(len(latencies) / elapsed, 1),
            **_percentiles(latencies)}


def measure_kafka(bootstrap: str, task: str, prefix: str, requests: list[dict], timeout: float = 600) -> dict:
    full = stream_through_kafka(bootstrap, task, prefix, requests, None, timeout)
    half = stream_through_kafka(bootstrap, task, prefix, requests, full["items_per_s"] / 2, timeout)
    return {"full_speed": full, "half_speed": half}


def _rss_mb(pid: int) -> float:
    import psutil

    root = psutil.Process(pid)
    return round(sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]) / 2**20, 1)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_task(task: str, plan: BenchPlan) -> dict:
    from slm.demo import load_rows

    model_dir = default_model_dir(task)
    rows, _, _ = load_rows(task, None)
    texts = _model_inputs(task, model_dir, rows)
    limit_texts = (texts * (plan.limit_items // len(texts) + 1))[:plan.limit_items]
    result: dict = {"task": task, "model_dir": str(model_dir)}
    result["limit_int8"] = measure_limit(task, model_dir, limit_texts, plan.batch_sizes, "model.onnx")
    result["limit_fp32_onnx"] = measure_limit(task, model_dir, limit_texts, plan.batch_sizes[-1:], "model.fp32.onnx")
    print(f"[{task}] limit int8 {result['limit_int8']['items_per_s']} items/s "
          f"(batch {result['limit_int8']['best_batch']})", flush=True)

    port, prefix = _free_port(), f"bench{uuid.uuid4().hex[:6]}."
    env = {**os.environ, "SLM_KAFKA_BOOTSTRAP": plan.bootstrap, "SLM_KAFKA_TOPIC_PREFIX": prefix,
           "SLM_KAFKA_GROUP_ID": f"{prefix}slm-{task}", "OTEL_SDK_DISABLED": "true",
           # The response cache would answer the repeated test rows without the model; it has its
           # own benchmark (bench/cache.py).
           "SLM_CACHE_SIZE": "0"}
    log = open(plan.out / f"{task}-serve.log", "wb")
    started = time.perf_counter()
    proc = subprocess.Popen([str(Path(sys.executable).with_name("slm")), "serve", task, "--port", str(port),
                             "--model", str(model_dir)], cwd=REPO_ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"slm serve {task} exited; see {log.name}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        result["cold_start_s"] = round(time.perf_counter() - started, 1)
        result["rest"] = measure_rest(f"{url}/predict", rows, plan)
        print(f"[{task}] REST single-item: " + ", ".join(
            f"c={r['concurrency']} {r['items_per_s']}/s p99 {r['p99']} ms" for r in result["rest"]["single"]),
            flush=True)
        stream = (rows * (plan.kafka_records // len(rows) + 1))[:plan.kafka_records]
        result["kafka"] = measure_kafka(plan.bootstrap, task, prefix, stream)
        print(f"[{task}] Kafka {result['kafka']['full_speed']['items_per_s']}/s; at 50%: p99 "
              f"{result['kafka']['half_speed']['p99']} ms", flush=True)
        result["rss_mb"] = _rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(60)
        log.close()
    return result


def _table(results: list[dict]) -> str:
    lines = ["| task | int8 limit items/s (batch) | REST c=1 | REST c=32 | REST c=32 / limit | REST p99 c=32 (ms) "
             "| Kafka items/s | Kafka / limit | Kafka p99 at 50% (ms) | cold start (s) | RSS (MB) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        limit = r["limit_int8"]["items_per_s"]
        rest = {x["concurrency"]: x for x in r["rest"]["single"]}
        c32 = rest.get(32, {})
        kafka = r["kafka"]["full_speed"]["items_per_s"]
        lines.append(
            f"| {r['task']} | {limit} ({r['limit_int8']['best_batch']}) | {rest.get(1, {}).get('items_per_s')} "
            f"| {c32.get('items_per_s')} | {c32.get('items_per_s', 0) / limit:.2f} | {c32.get('p99')} | {kafka} "
            f"| {kafka / limit:.2f} | {r['kafka']['half_speed']['p99']} | {r['cold_start_s']} | {r['rss_mb']} |")
    return "\n".join(lines)


def _plots(results: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_l) = plt.subplots(1, 2, figsize=(11, 4))
    for r in results:
        points = r["rest"]["single"]
        xs = [p["concurrency"] for p in points]
        ax_t.plot(xs, [p["items_per_s"] for p in points], marker="o", label=r["task"])
        ax_t.axhline(r["limit_int8"]["items_per_s"], linestyle=":", linewidth=1)
        ax_l.plot(xs, [p["p99"] for p in points], marker="o", label=f"{r['task']} p99")
        ax_l.plot(xs, [p["p50"] for p in points], marker=".", linestyle="--", label=f"{r['task']} p50")
    for ax, ylabel in ((ax_t, "items/s (dotted: int8 limit)"), (ax_l, "latency (ms)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrency (single-item REST requests)")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "rest.png", dpi=120)
    plt.close(fig)


def run_bench(plan: BenchPlan) -> list[dict]:
    plan.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results = [bench_task(task, plan) for task in plan.tasks]
    summary = {"quick": plan.quick, "seconds": round(time.perf_counter() - started, 1), "cpus": os.cpu_count(),
               "tasks": results}
    (plan.out / "results.json").write_text(json.dumps(summary, indent=2))
    (plan.out / "results.md").write_text(_table(results) + "\n")
    _plots(results, plan.out)
    logger.info("bench took %.0fs; results in %s", summary["seconds"], plan.out)
    return results
