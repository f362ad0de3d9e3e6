"""``python -m bench`` (``bench.command``): each task service against its model's own limit, measured in one run.

For every task:

- **limit** (:mod:`bench.limits`): the int8 ONNX model alone, tokenization included: batch 1
  (its time per item is the yardstick of every latency), arrival-order batches, and runs cut
  from texts sorted by length at several batch sizes and token budgets; the best is the
  **best limit**, the yardstick of every throughput. The fp32 ONNX graph where the folder has
  it, and the peers' torch model;
- **REST** (:mod:`bench.rest_load`): ``slm serve <task>`` on loopback, single-item requests at
  concurrency 1/32/128 (1/8/32/128 in a full run) and 16-item requests, from an aiohttp load
  generator: items/s and p50/p95/p99; then single items paced open-loop at 50% of the best
  single-item rate, for p99;
- **Kafka** (:mod:`bench.kafka_stream`): K requests produced at once, time until the K-th
  result; then paced at 50% of that rate for per-message latency;
- **cold start** (process start to ``/readyz``) and **resident memory** of the service's
  process tree (``rss_mb``; the largest process, the worker, in ``rss_worker_mb``);
- **peers** (classification tasks; ``bench.peers``): FastAPI + a transformers pipeline, BentoML's
  torch service with adaptive batching, Ray Serve's ``@serve.batch``, under the same REST load.
  Their torch model holds the served int8 graph's weights, dequantized to fp32
  (:mod:`bench.torch_checkpoint`), so they run on any clone, with the same weights as the service.

:mod:`bench.figures` turns the results into ratios and the issue's targets; :mod:`bench.report`
writes ``results.json``, ``results.md`` (the figures, the targets table ``figure | value | target
| met``, the peers) and ``rest.png`` to ``--out``.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.figures import percentiles, ratios
from bench.kafka_stream import measure_kafka, stream_through_kafka
from bench.limits import measure_limit, measure_torch_limit, model_inputs, tokens_per_item
from bench.peers import PEERS
from bench.report import results_table, write_plots
from bench.rest_load import measure_rest, rest_load
from devtools.host_tools import free_port
from devtools.service_process import ServerProcess, ServiceProcess
from pipelines.labelled_rows import load_rows
from shared.settings import default_model_dir

__all__ = ["BenchPlan", "bench_task", "percentiles", "ratios", "rest_load", "results_table", "run_bench",
           "stream_through_kafka", "tokens_per_item"]

logger = logging.getLogger(__name__)


@dataclass
class BenchPlan:
    """What one ``python -m bench`` run measures.

    Args:
        tasks (`list[str]`): the tasks, one after another.
        out (`Path`): where the results go.
        bootstrap (`str`): the Kafka broker.
        quick (`bool`, defaults to `False`): the smoke run's smaller plan (:meth:`for_run`).
        concurrencies (`list[int]`, defaults to `[1, 8, 32, 128]`): single-item REST concurrencies.
        batch_sizes (`list[int]`, defaults to `[1, 32, 64]`): the limit's arrival-order batch sizes.
        shapes (`list[tuple[int, int | None]]`): the limit's length-sorted run shapes, (items, padded
            tokens or None); defaults to 8, 32, 64 items x no bound, 512, 1024 tokens.
        rest_seconds (`float`, defaults to `15.0`): each REST point's length.
        limit_items (`int`, defaults to `2000`): texts per limit figure.
        kafka_records (`int`, defaults to `2000`): records per Kafka run.
        peers (`bool`, defaults to `True`): also the peers and the torch limit.
    """

    tasks: list[str]
    out: Path
    bootstrap: str
    quick: bool = False
    concurrencies: list[int] = field(default_factory=lambda: [1, 8, 32, 128])
    batch_sizes: list[int] = field(default_factory=lambda: [1, 32, 64])
    shapes: list[tuple[int, int | None]] = field(
        default_factory=lambda: [(b, t) for b in (8, 32, 64) for t in (None, 512, 1024)])
    rest_seconds: float = 15.0
    limit_items: int = 2000
    kafka_records: int = 2000
    peers: bool = True

    @classmethod
    def for_run(cls, tasks: list[str], out: Path, bootstrap: str, quick: bool, peers: bool = True) -> "BenchPlan":
        if not quick:
            return cls(tasks, out, bootstrap, peers=peers)
        return cls(tasks, out, bootstrap, quick=True, concurrencies=[1, 32, 128], batch_sizes=[1, 32],
                   shapes=[(8, None), (32, None), (64, 512)], rest_seconds=4, limit_items=300, kafka_records=300,
                   peers=peers)


def _rss_mb(pid: int) -> float:
    """Resident memory of the process and everything under it (a server and its workers), MB."""
    import psutil

    root = psutil.Process(pid)
    return round(sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]) / 2**20, 1)


def _largest_rss_mb(pid: int) -> float:
    """Resident memory of the largest process of the tree (a BentoML service's worker), MB."""
    import psutil

    root = psutil.Process(pid)
    return round(max(p.memory_info().rss for p in [root, *root.children(recursive=True)]) / 2**20, 1)


def _started(server: ServerProcess, timeout: float = 300) -> ServerProcess:
    """``server`` once it is ready (e.g. an app whose start-up failed but whose process stays is stopped)."""
    try:
        return server.wait_ready(timeout)
    except BaseException:
        server.stop()
        raise


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
        rest = measure_rest(url, rows, plan.concurrencies, plan.rest_seconds, half_load=False)
        result = {"peer": name, "cold_start_s": peer.cold_start_s, "rest": rest, "rss_mb": _rss_mb(peer.pid)}
    finally:
        peer.stop(90)
    print(f"  peer {name}: " + ", ".join(f"c={r['concurrency']} {r['items_per_s']}/s"
                                         for r in result["rest"]["single"]), flush=True)
    return result


def _limits(task: str, model_dir: Path, texts: list[str], plan: BenchPlan) -> dict:
    """The int8 limit, and the fp32 ONNX one where the folder has that graph (a training's, not a release's)."""
    limit_texts = (texts * (plan.limit_items // len(texts) + 1))[:plan.limit_items]
    out = {"limit_int8": measure_limit(model_dir, limit_texts, plan.batch_sizes, plan.shapes)}
    print(f"[{task}] limit int8: best {out['limit_int8']['items_per_s']} items/s ({out['limit_int8']['best_batch']}), "
          f"batch 1 {out['limit_int8'].get('batch1_ms')} ms per item", flush=True)
    if (model_dir / "model.fp32.onnx").is_file():
        out["limit_fp32_onnx"] = measure_limit(model_dir, limit_texts, [], plan.shapes[-1:], "model.fp32.onnx")
    return out


def _peers_checkpoint(task: str, model_dir: Path, texts: list[str], plan: BenchPlan, result: dict) -> Path | None:
    """The peers' torch folder, rebuilt from the served graph; None (and why, in the result) when they don't run."""
    from shared.runtime import read_model_info
    from shared.task_kinds import CLASSIFICATION, kind_named

    if not plan.peers:
        return None
    # The peers and the torch limit need a sequence classifier in torch: not the entity tagger.
    if kind_named(read_model_info(model_dir).kind, model_dir) is not CLASSIFICATION:
        result["peers_skipped"] = "the peers are sequence classifiers; this task tags tokens."
        return None
    from bench.torch_checkpoint import torch_checkpoint

    checkpoint = torch_checkpoint(model_dir, texts)
    record = checkpoint / "rebuilt_from.json"
    check = json.loads(record.read_text()) if record.is_file() else {}
    result["peers_model"] = (f"torch fp32 with the served int8 graph's weights, dequantized; same top label as the "
                             f"served graph on {check.get('label_agreement', 0):.0%} of 64 texts")
    limit_texts = (texts * (plan.limit_items // len(texts) + 1))[:plan.limit_items]
    result["limit_fp32_torch"] = measure_torch_limit(checkpoint, model_dir, limit_texts, [plan.batch_sizes[-1]])
    print(f"[{task}] limit of the peers' torch model {result['limit_fp32_torch']['items_per_s']} items/s", flush=True)
    return checkpoint


def bench_task(task: str, plan: BenchPlan) -> dict:
    """Every figure of one task: its limits, the service over REST and Kafka, the peers."""
    model_dir = default_model_dir(task)
    rows, _, _ = load_rows(task, None)
    texts = model_inputs(model_dir, rows)
    result: dict = {"task": task, "model_dir": str(model_dir), "tokens_per_item": tokens_per_item(model_dir, texts)}
    result.update(_limits(task, model_dir, texts, plan))
    checkpoint = _peers_checkpoint(task, model_dir, texts, plan, result)

    prefix = f"bench{uuid.uuid4().hex[:6]}."
    env = {"SLM_KAFKA_BOOTSTRAP": plan.bootstrap, "SLM_KAFKA_TOPIC_PREFIX": prefix,
           "SLM_KAFKA_GROUP_ID": f"{prefix}slm-{task}", "OTEL_SDK_DISABLED": "true",
           # The response cache would answer the repeated test rows without the model; it has its
           # own benchmark (bench/response_cache.py).
           "SLM_CACHE_SIZE": "0"}
    service = _started(ServiceProcess(task, model_dir, plan.out / f"{task}-serve.log", env=env))
    result["cold_start_s"] = service.cold_start_s
    try:
        result["rest"] = measure_rest(f"{service.url}/predict", rows, plan.concurrencies, plan.rest_seconds)
        half = result["rest"].get("half_load", {})
        print(f"[{task}] REST single-item: " + ", ".join(
            f"c={r['concurrency']} {r['items_per_s']}/s p99 {r['p99']} ms" for r in result["rest"]["single"])
            + f"; paced at {half.get('rate')}/s: p99 {half.get('p99')} ms", flush=True)
        stream = (rows * (plan.kafka_records // len(rows) + 1))[:plan.kafka_records]
        result["kafka"] = measure_kafka(plan.bootstrap, task, prefix, stream)
        full, half = result["kafka"]["full_speed"], result["kafka"]["half_speed"]
        print(f"[{task}] Kafka {full['items_per_s']}/s; paced at {half.get('rate')}/s: p99 {half['p99']} ms",
              flush=True)
        result["rss_mb"] = _rss_mb(service.pid)
        result["rss_worker_mb"] = _largest_rss_mb(service.pid)
    finally:
        service.stop(90)
    if checkpoint is not None:
        result["peers"] = {name: bench_peer(name, checkpoint, model_dir, rows, plan) for name in PEERS}
    result["ratios"] = ratios(result)
    return result


def run_bench(plan: BenchPlan) -> list[dict]:
    """Bench every task of the plan and write ``results.json``, ``results.md`` and ``rest.png``."""
    plan.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results = [bench_task(task, plan) for task in plan.tasks]
    summary = {"quick": plan.quick, "seconds": round(time.perf_counter() - started, 1), "cpus": os.cpu_count(),
               "tasks": results}
    (plan.out / "results.json").write_text(json.dumps(summary, indent=2))
    (plan.out / "results.md").write_text(results_table(results, plan.concurrencies) + "\n")
    write_plots(results, plan.out)
    logger.info("bench took %.0fs; results in %s", summary["seconds"], plan.out)
    return results
