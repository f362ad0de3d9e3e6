"""The response cache on a task's test stream: hit rate and items/s against no cache, same run.

Replays the test set in file order, in batches as the Kafka loop takes them, through the
service's own processor (int8 model, the cache keyed on what the model reads):

    python -m bench.response_cache [--task transactions] [--sizes 0,1000,10000] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

from pipelines.labelled_rows import load_rows
from shared.processors import Received
from shared.schemas import TaskRequestV1
from shared.settings import default_model_dir
from shared.task_kinds import load_processor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="transactions")
    parser.add_argument("--model", default=None, help="model folder (default models/<task>)")
    parser.add_argument("--sizes", default="0,1000,10000", help="cache capacities; 0 is the baseline")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    args = parser.parse_args(argv)

    rows, _, _ = load_rows(args.task, None)
    requests = [TaskRequestV1(id=str(i), **row) for i, row in enumerate(rows)]
    model_dir = args.model or default_model_dir(args.task)
    print(f"{args.task}: {len(requests)} test rows in file order, batches of {args.batch}")
    print(f"{'cache size':>10}{'hit rate':>10}{'items/s':>10}{'ratio':>8}")
    base = None
    for size in (int(s) for s in args.sizes.split(",")):
        processor = load_processor(args.task, model_dir, intra_op_threads=args.threads, cache_size=size)
        started = time.perf_counter()
        for start in range(0, len(requests), args.batch):
            processor.process([Received.now(r) for r in requests[start:start + args.batch]])
        rate = len(requests) / (time.perf_counter() - started)
        base = base or rate
        print(f"{size:>10}{processor.cache.hit_rate:>10.3f}{rate:>10.1f}{rate / base:>8.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
