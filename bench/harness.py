"""``python -m bench`` (``bench.command``): each task service against its model's own limit, measured in one run.

For every task:

- **limit**: the int8 ONNX model alone (tokenizer + ONNX Runtime, batches sorted by length),
  items/s at several batch sizes, the best one kept; the fp32 ONNX graph and the fp32 torch
  model (fp16 on a GPU) the same way;
- **REST**: ``slm serve <task>`` on loopback, single-item and 16-item requests from an
  asyncio load generator at concurrency 1, 8, 32, 128: items/s and p50/p95/p99 latency;
- **Kafka**: K requests produced at once, time until the K-th result; then the same at 50%
  of that rate, paced, for per-message latency (result timestamp minus request timestamp);
- **cold start** (process start to ``/readyz``) and **resident memory** of the service;
- **peers** (classification tasks; ``bench.peers``): FastAPI + a transformers pipeline, BentoML's
  torch service with adaptive batching, Ray Serve's ``@serve.batch``, on the same fine-tuned
  weights, under the same REST load, with their cold start (to the first answer) and memory.

Writes ``results.json``, ``results.md`` (ratios to the int8 limit and to each peer, same run)
and ``rest.png`` (items/s and p50/p99 against concurrency) to ``--out``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from bench.peers import PEERS
from devtools.host_tools import free_port
from devtools.service_process import ServerProcess, ServiceProcess
from pipelines.labelled_rows import load_rows
from shared.kafka.clients import client_options
from shared.settings import default_model_dir

__all__ = ["BenchPlan", "percentiles", "ratios", "rest_load", "results_table", "run_bench", "stream_through_kafka",
           "tokens_per_item"]

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
    peers: bool = True

    @classmethod
    def for_run(cls, tasks: list[str], out: Path, bootstrap: str, quick: bool, peers: bool = True) -> "BenchPlan":
        if not quick:
            return cls(tasks, out, bootstrap, peers=peers)
        return cls(tasks, out, bootstrap, quick=True, concurrencies=[1, 32], batch_sizes=[1, 32], rest_seconds=4,
                   limit_items=300, kafka_records=300, peers=peers)


def percentiles(values_ms: list[float]) -> dict:
    if not values_ms:
        return {"p50": None, "p95": None, "p99": None}
    p50, p95, p99 = np.percentile(values_ms, [50, 95, 99])
    return {"p50": round(float(p50), 2), "p95": round(float(p95), 2), "p99": round(float(p99), 2)}


def _model_inputs(model_dir: Path, requests: list[dict]) -> list[str]:
    from shared.runtime import read_model_info
    from shared.task_kinds import kind_named

    info = read_model_info(model_dir)
    kind, fields = kind_named(info.kind, model_dir), info.columns.get("fields", [])
    return [kind.model_text(r["text"], r.get("fields", {}), fields) for r in requests]


def tokens_per_item(model_dir: Path, texts: list[str]) -> float:
    """Mean tokens per input (special tokens included, no truncation): items/s times this is tokens/s."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()  # a saved tokenizer may pad every input to the longest of the batch
    return round(float(np.mean([len(e.ids) for e in tokenizer.encode_batch(texts)])), 1)


def measure_limit(task: str, model_dir: Path, texts: list[str], batch_sizes: list[int], onnx_file: str) -> dict:
    """Items/s of the model alone, one thread per core the machine has, by batch size."""
    from shared.runtime import read_model_info
    from shared.task_kinds import kind_named

    kind = kind_named(read_model_info(model_dir).kind, model_dir)
    by_batch = {}
    # Runs of a fixed size, and runs of up to 64 items within 512 padded tokens: the service's
    # default, and the best on long-tailed texts (helpdesk).
    for batch, tokens in [(batch, None) for batch in batch_sizes] + [(64, 512)]:
        model = kind.load_model(model_dir, max_batch_size=batch, onnx_file=onnx_file, max_batch_tokens=tokens)
        run = getattr(model, "predict_proba", model.predict)  # a classifier's probabilities, no result objects
        run(texts[:batch])  # warm-up
        started = time.perf_counter()
        for start in range(0, len(texts), batch * 8):  # several batches per call, as a stream arrives
            run(texts[start:start + batch * 8])
        by_batch[batch if tokens is None else f"{batch}/{tokens}tok"] = round(len(texts) / (time.perf_counter() - started), 1)
    best = max(by_batch, key=by_batch.get)
    return {"items_per_s": by_batch[best], "best_batch": best, "by_batch": by_batch}


async def rest_load(url: str, bodies: list[bytes], items_per_body: int, concurrency: int, seconds: float) -> dict:
    """Closed-loop load: ``concurrency`` clients, each sending its next body when answered.

    aiohttp, with the bodies encoded beforehand: the generator shares the machine's cores with
    the server (httpx used 0.3 to 0.9 of a core at 100 to 140 requests/s on 2 cores, aiohttp
    under 0.1 at 190).
    The CPU it used is reported with the result (``client_cpu``, in cores).
    """
    import aiohttp

    latencies: list[float] = []
    items = errors = 0
    deadline = time.perf_counter() + seconds
    headers = {"content-type": "application/json"}

    async def worker(session: aiohttp.ClientSession, offset: int) -> None:
        nonlocal items, errors
        i = offset
        while time.perf_counter() < deadline:
            body = bodies[i % len(bodies)]
            i += concurrency
            started = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    ok = response.status == 200
            except (aiohttp.ClientError, asyncio.TimeoutError):  # dropped by an overloaded server: an error
                ok = False
            if ok:
                latencies.append((time.perf_counter() - started) * 1000)
                items += items_per_body
            else:
                errors += 1

    cpu_before = time.process_time()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session, k) for k in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"concurrency": concurrency, "items_per_s": round(items / elapsed, 1), "requests": len(latencies),
            "errors": errors, **percentiles(latencies),
            "client_cpu": round((time.process_time() - cpu_before) / elapsed, 2)}


def measure_rest(url: str, requests: list[dict], plan: BenchPlan) -> dict:
    singles = [json.dumps({"items": [{"id": str(i), **r}]}).encode() for i, r in enumerate(requests)]
    batches = [json.dumps({"items": [{"id": f"{i}-{k}", **r} for k, r in enumerate(requests[i:i + 16])]}).encode()
               for i in range(0, len(requests) - 16, 16)]
    return {
        "single": [asyncio.run(rest_load(url, singles, 1, c, plan.rest_seconds)) for c in plan.concurrencies],
        "batch16": [asyncio.run(rest_load(url, batches, 16, c, plan.rest_seconds)) for c in plan.concurrencies[:2]],
    }


def stream_through_kafka(bootstrap: str, task: str, prefix: str, requests: list[dict], rate: float | None,
                         timeout: float, isolation_level: str = "read_uncommitted") -> dict:
    """Produce the requests (paced at ``rate``/s when given); items/s and per-message latency, as a
    reader with ``isolation_level`` sees them (``read_committed``: once their transaction commits)."""
    from kafka import KafkaConsumer, KafkaProducer

    from shared.kafka import TaskTopics

    topics = TaskTopics(task, prefix)
    consumer = KafkaConsumer(topics.results, **client_options(bootstrap), auto_offset_reset="latest",
                             enable_auto_commit=False, group_id=None, isolation_level=isolation_level)
    while not consumer.assignment():
        consumer.poll(timeout_ms=200)
    consumer.poll(timeout_ms=200)
    producer = KafkaProducer(**client_options(bootstrap), acks="all", linger_ms=2)
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
            **percentiles(latencies)}


def measure_kafka(bootstrap: str, task: str, prefix: str, requests: list[dict], timeout: float = 600) -> dict:
    full = stream_through_kafka(bootstrap, task, prefix, requests, None, timeout)
    half = stream_through_kafka(bootstrap, task, prefix, requests, full["items_per_s"] / 2, timeout)
    return {"full_speed": full, "half_speed": half}


def _rss_mb(pid: int) -> float:
    import psutil

    root = psutil.Process(pid)
    return round(sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]) / 2**20, 1)


def _started(server: ServerProcess, timeout: float = 300) -> ServerProcess:
    """``server`` once it is ready (e.g. an app whose start-up failed but whose process stays is stopped)."""
    try:
        return server.wait_ready(timeout)
    except BaseException:
        server.stop()
        raise


def measure_torch_limit(checkpoint: Path, model_dir: Path, texts: list[str], batch_sizes: list[int]) -> dict:
    """Items/s of the fine-tuned model in torch fp32 (fp16 on a GPU), batches sorted by length."""
    from bench.peers.peer_model import PeerModel

    model = PeerModel(checkpoint, model_dir)
    by_batch = {}
    for batch in batch_sizes:
        model.classify(texts[:batch])  # warm-up
        started = time.perf_counter()
        for start in range(0, len(texts), batch * 8):
            chunk = sorted(texts[start:start + batch * 8], key=len)
            for k in range(0, len(chunk), batch):
                model.classify(chunk[k:k + batch])
        by_batch[batch] = round(len(texts) / (time.perf_counter() - started), 1)
    best = max(by_batch, key=by_batch.get)
    return {"items_per_s": by_batch[best], "best_batch": best, "by_batch": by_batch, "device": model.device}


def bench_peer(name: str, checkpoint: Path, model_dir: Path, rows: list[dict], plan: BenchPlan) -> dict:
    """One peer (bench.peers) under the same REST load as the service: cold start, REST, memory."""
    from bench.peers import peer_command

    port = free_port()
    url = f"http://127.0.0.1:{port}/predict"
    probe = {"items": [{"id": "probe", **rows[0]}]}
    env = {"BENCH_PEER_CHECKPOINT": str(checkpoint), "BENCH_PEER_MODEL_DIR": str(model_dir),
           "BENCH_PEER_PORT": str(port), "OTEL_SDK_DISABLED": "true"}
    peer = _started(ServerProcess(peer_command(name, port), plan.out / f"peer-{name}.log", port=port, env=env,
                                  ready=lambda base: httpx.post(f"{base}/predict", json=probe, timeout=5).status_code == 200,
                                  name=f"peer {name}"))
    try:
        result = {"peer": name, "cold_start_s": peer.cold_start_s, "rest": measure_rest(url, rows, plan)}
        result["rss_mb"] = _rss_mb(peer.pid)
    finally:
        peer.stop(90)
    print(f"  peer {name}: " + ", ".join(f"c={r['concurrency']} {r['items_per_s']}/s"
                                         for r in result["rest"]["single"]), flush=True)
    return result


def _rest_at(result: dict, concurrency: int) -> dict:
    return next((r for r in result["rest"]["single"] if r["concurrency"] == concurrency), {})


def ratios(result: dict, concurrency: int = 32) -> dict:
    """The service's REST items/s at ``concurrency`` over the limit and over each peer's, and Kafka over the limit."""
    ours = _rest_at(result, concurrency).get("items_per_s", 0)
    limit = result["limit_int8"]["items_per_s"]
    out = {f"rest_c{concurrency}_over_limit": round(ours / limit, 2),
           "kafka_over_limit": round(result["kafka"]["full_speed"]["items_per_s"] / limit, 2)}
    for name, peer in result.get("peers", {}).items():
        theirs = _rest_at(peer, concurrency).get("items_per_s")
        out[f"rest_c{concurrency}_over_{name}"] = round(ours / theirs, 2) if theirs else None
    return out


def bench_task(task: str, plan: BenchPlan) -> dict:
    from shared.runtime import read_model_info
    from shared.task_kinds import CLASSIFICATION, kind_named

    model_dir = default_model_dir(task)
    rows, _, _ = load_rows(task, None)
    texts = _model_inputs(model_dir, rows)
    limit_texts = (texts * (plan.limit_items // len(texts) + 1))[:plan.limit_items]
    result: dict = {"task": task, "model_dir": str(model_dir), "tokens_per_item": tokens_per_item(model_dir, texts)}
    result["limit_int8"] = measure_limit(task, model_dir, limit_texts, plan.batch_sizes, "model.onnx")
    print(f"[{task}] limit int8 {result['limit_int8']['items_per_s']} items/s "
          f"(batch {result['limit_int8']['best_batch']})", flush=True)
    has_fp32 = (model_dir / "model.fp32.onnx").is_file()
    if has_fp32:
        result["limit_fp32_onnx"] = measure_limit(task, model_dir, limit_texts, plan.batch_sizes[-1:],
                                                  "model.fp32.onnx")
    else:
        print(f"[{task}] {model_dir} has no model.fp32.onnx (release folders ship the served graph only): the fp32 "
              f"limits and the peers are skipped; `make train-{task}` writes it", flush=True)
    # The peers and the torch limit need a sequence classifier in torch: not the entity tagger.
    checkpoint = None
    if plan.peers and has_fp32 and kind_named(read_model_info(model_dir).kind, model_dir) is CLASSIFICATION:
        from bench.torch_checkpoint import torch_checkpoint

        checkpoint = torch_checkpoint(model_dir, texts)
        result["limit_fp32_torch"] = measure_torch_limit(checkpoint, model_dir, limit_texts, plan.batch_sizes[-1:])
        print(f"[{task}] limit torch {result['limit_fp32_torch']['items_per_s']} items/s", flush=True)

    prefix = f"bench{uuid.uuid4().hex[:6]}."
    env = {"SLM_KAFKA_BOOTSTRAP": plan.bootstrap, "SLM_KAFKA_TOPIC_PREFIX": prefix,
           "SLM_KAFKA_GROUP_ID": f"{prefix}slm-{task}", "OTEL_SDK_DISABLED": "true",
           # The response cache would answer the repeated test rows without the model; it has its
           # own benchmark (bench/response_cache.py).
           "SLM_CACHE_SIZE": "0"}
    service = _started(ServiceProcess(task, model_dir, plan.out / f"{task}-serve.log", env=env))
    result["cold_start_s"] = service.cold_start_s
    try:
        result["rest"] = measure_rest(f"{service.url}/predict", rows, plan)
        print(f"[{task}] REST single-item: " + ", ".join(
            f"c={r['concurrency']} {r['items_per_s']}/s p99 {r['p99']} ms" for r in result["rest"]["single"]),
            flush=True)
        stream = (rows * (plan.kafka_records // len(rows) + 1))[:plan.kafka_records]
        result["kafka"] = measure_kafka(plan.bootstrap, task, prefix, stream)
        print(f"[{task}] Kafka {result['kafka']['full_speed']['items_per_s']}/s; at 50%: p99 "
              f"{result['kafka']['half_speed']['p99']} ms", flush=True)
        result["rss_mb"] = _rss_mb(service.pid)
    finally:
        service.stop(90)
    if checkpoint is not None:
        result["peers"] = {name: bench_peer(name, checkpoint, model_dir, rows, plan) for name in PEERS}
    result["ratios"] = ratios(result)
    return result


PEER_TITLES = {"fastapi": "peer (a) FastAPI + transformers pipeline, torch fp32",
               "bentoml": "peer (b) BentoML torch service, adaptive batching",
               "ray": "peer (c) Ray Serve @serve.batch, torch fp32"}


def _summary_table(results: list[dict]) -> list[str]:
    lines = ["| task | int8 limit items/s (batch) | REST c=1 | REST c=32 | REST c=32 / limit | REST p99 c=32 (ms) "
             "| Kafka items/s | Kafka / limit | Kafka p99 at 50% (ms) | cold start (s) | RSS (MB) "
             "| tokens/item | Kafka tokens/s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        limit = r["limit_int8"]["items_per_s"]
        c32 = _rest_at(r, 32)
        kafka = r["kafka"]["full_speed"]["items_per_s"]
        lines.append(
            f"| {r['task']} | {limit} ({r['limit_int8']['best_batch']}) | {_rest_at(r, 1).get('items_per_s')} "
            f"| {c32.get('items_per_s')} | {c32.get('items_per_s', 0) / limit:.2f} | {c32.get('p99')} | {kafka} "
            f"| {kafka / limit:.2f} | {r['kafka']['half_speed']['p99']} | {r['cold_start_s']} | {r['rss_mb']} "
            f"| {r['tokens_per_item']} | {kafka * r['tokens_per_item']:.0f} |")
    return lines


def _systems_table(r: dict, concurrencies: list[int]) -> list[str]:
    """One task: the limits, then the service and each peer; REST items/s by concurrency and ratios."""
    limit = r["limit_int8"]["items_per_s"]
    ours = _rest_at(r, 32).get("items_per_s")
    limits = [f"{title} {r[key]['items_per_s']} ({r[key]['best_batch']})"
              for key, title in (("limit_int8", "int8 ONNX"), ("limit_fp32_onnx", "fp32 ONNX"),
                                 ("limit_fp32_torch", "fp32 torch")) if key in r]
    head = " | ".join(f"c={c}" for c in concurrencies)
    lines = [f"**{r['task']}**: the model alone, items/s (best run shape): " + ", ".join(limits) + ".", "",
             f"| system | {head} | p99 c=32 (ms) | 16-item c=8 | cold start (s) | RSS (MB) | c=32 / int8 limit "
             "| service c=32 / this |",
             "|---|" + "---|" * (len(concurrencies) + 6)]
    for name, system in [("slm serve (this service)", r), *[(PEER_TITLES[k], v) for k, v in r.get("peers", {}).items()]]:
        by_c = " | ".join(str(_rest_at(system, c).get("items_per_s", "")) for c in concurrencies)
        batch16 = next((b["items_per_s"] for b in system["rest"]["batch16"] if b["concurrency"] == 8), "")
        c32 = _rest_at(system, 32).get("items_per_s")
        versus = f"{ours / c32:.2f}" if ours and c32 else ""
        lines.append(f"| {name} | {by_c} | {_rest_at(system, 32).get('p99', '')} | {batch16} | {system['cold_start_s']} "
                     f"| {system['rss_mb']} | {(c32 or 0) / limit:.2f} | {versus} |")
    return lines


def results_table(results: list[dict], concurrencies: list[int]) -> str:
    """``results.md``: the summary table of every task, then each task against the limits and the peers."""
    lines = _summary_table(results)
    for r in results:
        lines += ["", *_systems_table(r, concurrencies)]
    return "\n".join(lines)


def _plots(results: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 2, figsize=(11, 4 * len(results)), squeeze=False)
    for r, (ax_t, ax_l) in zip(results, axes):
        systems = [("slm serve", r), *r.get("peers", {}).items()]
        for name, system in systems:
            points = system["rest"]["single"]
            xs = [p["concurrency"] for p in points]
            ax_t.plot(xs, [p["items_per_s"] for p in points], marker="o", label=name)
            ax_l.plot(xs, [p["p99"] for p in points], marker="o", label=f"{name} p99")
            ax_l.plot(xs, [p["p50"] for p in points], marker=".", linestyle="--", label=f"{name} p50")
        ax_t.axhline(r["limit_int8"]["items_per_s"], color="grey", linestyle=":", label="int8 limit")
        ax_l.set_yscale("log")
        for ax, ylabel in ((ax_t, f"{r['task']}: items/s"), (ax_l, f"{r['task']}: latency (ms)")):
            ax.set_xscale("log", base=2)
            ax.set_xlabel("concurrency (single-item REST requests)")
            ax.set_ylabel(ylabel)
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "rest.png", dpi=110)
    plt.close(fig)


def run_bench(plan: BenchPlan) -> list[dict]:
    plan.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results = [bench_task(task, plan) for task in plan.tasks]
    summary = {"quick": plan.quick, "seconds": round(time.perf_counter() - started, 1), "cpus": os.cpu_count(),
               "tasks": results}
    (plan.out / "results.json").write_text(json.dumps(summary, indent=2))
    (plan.out / "results.md").write_text(results_table(results, plan.concurrencies) + "\n")
    _plots(results, plan.out)
    logger.info("bench took %.0fs; results in %s", summary["seconds"], plan.out)
    return results
