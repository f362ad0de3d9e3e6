"""The cost of exactly-once delivery: the same stream through one task service at least once and
exactly once, alternated within one run, printed as ratios.

Each round starts the service (``slm serve``, the release model, cache off) once per delivery
mode on fresh topics, warms it up, then streams N requests at full speed and again paced at half
that rate. Exactly-once output is read as a downstream consumer must read it
(``read_committed``: a result counts once its batch's transaction commits); at-least-once output
as it is written.

    slm kafka up && python -m bench.delivery [--task sentiment] [--records 3000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import uuid
from pathlib import Path

from bench.harness import _started, stream_through_kafka
from devtools.service_process import ServiceProcess
from pipelines.labelled_rows import load_rows
from shared.settings import default_model_dir

MODES = ("at_least_once", "exactly_once")
READER = {"at_least_once": "read_uncommitted", "exactly_once": "read_committed"}


def measure_mode(mode: str, task: str, bootstrap: str, requests: list[dict], out: Path, timeout: float) -> dict:
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    env = {"SLM_KAFKA_BOOTSTRAP": bootstrap, "SLM_KAFKA_TOPIC_PREFIX": prefix, "SLM_KAFKA_GROUP_ID": f"{prefix}slm-{task}",
           "SLM_KAFKA_DELIVERY": mode, "SLM_KAFKA_GROUP_INSTANCE_ID": f"{task}-bench", "SLM_CACHE_SIZE": "0",
           "OTEL_SDK_DISABLED": "true"}
    service = _started(ServiceProcess(task, default_model_dir(task), out / f"{task}-{mode}.log", env=env))
    try:
        reader = READER[mode]
        stream_through_kafka(bootstrap, task, prefix, requests[:100], None, timeout, reader)  # warm-up
        full = stream_through_kafka(bootstrap, task, prefix, requests, None, timeout, reader)
        half = stream_through_kafka(bootstrap, task, prefix, requests, full["items_per_s"] / 2, timeout, reader)
    finally:
        service.stop(90)
    for result in (full, half):
        if result["answered"] < result["records"]:
            raise TimeoutError(f"{mode}: {result['answered']}/{result['records']} answered within {timeout:.0f}s")
    return {"full": full, "half": half}


def best(runs: list[dict]) -> dict:
    """The best round of one mode: highest full-speed rate, lowest half-speed p99."""
    return {"items_per_s": max(r["full"]["items_per_s"] for r in runs),
            "p99_full_ms": min(r["full"]["p99"] for r in runs),
            "p99_half_ms": min(r["half"]["p99"] for r in runs),
            "p50_half_ms": min(r["half"]["p50"] for r in runs)}


def table(summary: dict[str, dict]) -> str:
    base = summary["at_least_once"]
    lines = ["| delivery | items/s | ratio | p99 full speed ms | p50 at 50% ms | p99 at 50% ms | p99 ratio at 50% |",
             "|---|---|---|---|---|---|---|"]
    for mode, row in summary.items():
        lines.append(f"| {mode} | {row['items_per_s']} | {row['items_per_s'] / base['items_per_s']:.2f} | "
                     f"{row['p99_full_ms']} | {row['p50_half_ms']} | {row['p99_half_ms']} | "
                     f"{row['p99_half_ms'] / base['p99_half_ms']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="sentiment")
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--kafka", default="127.0.0.1:9092")
    parser.add_argument("--out", type=Path, default=Path("reports/delivery"))
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    rows, _, _ = load_rows(args.task, None)
    requests = (rows * (args.records // len(rows) + 1))[:args.records]
    runs: dict[str, list[dict]] = {mode: [] for mode in MODES}
    for round_no in range(args.rounds):
        # Alternated, and the order swapped each round, so drift in the machine's load hits both.
        for mode in MODES if round_no % 2 == 0 else MODES[::-1]:
            result = measure_mode(mode, args.task, args.kafka, requests, args.out, args.timeout)
            runs[mode].append(result)
            print(f"round {round_no + 1} {mode}: {result['full']['items_per_s']} items/s, p99 at 50% "
                  f"{result['half']['p99']} ms", flush=True)
    summary = {mode: best(results) for mode, results in runs.items()}
    print(table(summary))
    (args.out / "delivery.json").write_text(json.dumps({"runs": runs, "summary": summary}, indent=2))
    return summary


if __name__ == "__main__":
    main()
