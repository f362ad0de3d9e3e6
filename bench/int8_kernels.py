"""What the unsigned-weight fallback costs: a folder's int8 graph as stored (u8s8) against the same
graph with its weights made unsigned (u8u8), which the services load on a CPU whose u8s8 kernels
saturate (:mod:`shared.runtime.int8_weights`). Same texts, same process, alternating rounds.

    python -m bench.int8_kernels [MODEL_DIR ...]     (default: models/sentiment)

On a CPU without VNNI the "as stored" row is what the graph would cost with saturating (wrong)
kernels: the services never run it there.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from pipelines.drift_reference import reference_requests
from pipelines.kinds import recipe_class
from pipelines.tasks import dataset_for
from shared.runtime import OnnxTextClassifier, read_model_info
from shared.runtime import int8_weights
from shared.runtime.int8_weights import u8s8_is_exact, unsign_int8_weights
from shared.runtime.model_folder import ONNX_FILE
from shared.settings import REPO_ROOT
from shared.task_kinds import kind_named

__all__ = ["compare_kernels"]

TEXTS = 512
BATCH_1_ITEMS = 128
ROUNDS = 3


def _rates(model, ids: list, order: list[int]) -> tuple[float, float]:
    """(items/s one at a time, items/s in length-sorted runs of 32) of an ONNX Runtime session."""
    started = time.perf_counter()
    for i in range(BATCH_1_ITEMS):
        model.session.run(["logits"], model.feeds_of([ids[i]]))
    one = BATCH_1_ITEMS / (time.perf_counter() - started)
    started = time.perf_counter()
    for start in range(0, len(order), 32):
        model.session.run(["logits"], model.feeds_of([ids[i] for i in order[start:start + 32]]))
    return one, len(order) / (time.perf_counter() - started)


def compare_kernels(model_dir: Path, threads: int = 2) -> dict:
    """Items/s of the graph as stored and with unsigned weights, batch 1 and sorted runs of 32 (classification)."""
    info = read_model_info(model_dir)
    if info.kind != "classification":
        raise SystemExit(f"{model_dir}: bench.int8_kernels measures classification folders")
    recipe = recipe_class(kind_named(info.kind, model_dir)).for_model(info)
    texts = [r.text for r in reference_requests(recipe, dataset_for(info.task).test_file, limit=TEXTS)]
    with tempfile.TemporaryDirectory(prefix="slm-int8-kernels-") as tmp:
        folder = Path(tmp) / "model"
        shutil.copytree(model_dir, folder)
        unsign_int8_weights(folder / ONNX_FILE, folder / "model.unsigned.onnx")
        exact_here = u8s8_is_exact()
        int8_weights.u8s8_is_exact = lambda: True  # load each graph as it is, whatever this CPU does
        try:
            graphs = {"as stored (u8s8)": OnnxTextClassifier(folder, threads, info=info),
                      "unsigned (u8u8)": OnnxTextClassifier(folder, threads, onnx_file="model.unsigned.onnx", info=info)}
        finally:
            int8_weights.u8s8_is_exact = u8s8_is_exact
        ids = graphs["as stored (u8s8)"].encode(texts)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        rates: dict[str, dict[str, list[float]]] = {name: {"batch_1": [], "sorted_32": []} for name in graphs}
        for _ in range(ROUNDS):
            for name, model in graphs.items():
                one, sorted_runs = _rates(model, ids, order)
                rates[name]["batch_1"].append(one)
                rates[name]["sorted_32"].append(sorted_runs)
    medians = {name: {shape: round(statistics.median(values), 1) for shape, values in by_shape.items()}
               for name, by_shape in rates.items()}
    stored, unsigned = medians["as stored (u8s8)"], medians["unsigned (u8u8)"]
    return {"model": info.model_id, "u8s8_exact_on_this_cpu": exact_here, "threads": threads, "texts": len(texts),
            "items_per_s": medians,
            "unsigned_over_stored": {shape: round(unsigned[shape] / stored[shape], 3) for shape in stored}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.int8_kernels", description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="*", type=Path, default=[REPO_ROOT / "models" / "sentiment"])
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads (default 2)")
    parser.add_argument("--json", action="store_true", help="one JSON object per folder")
    args = parser.parse_args(argv)
    for folder in args.folders:
        result = compare_kernels(folder, args.threads)
        if args.json:
            print(json.dumps(result))
            continue
        print(f"{result['model']}: u8s8 exact on this CPU: {result['u8s8_exact_on_this_cpu']}; "
              f"{result['texts']} test texts, {result['threads']} threads, median of {ROUNDS} rounds")
        for name, rates in result["items_per_s"].items():
            print(f"  {name:<18} batch 1 {rates['batch_1']:>7.1f} items/s   sorted runs of 32 {rates['sorted_32']:>7.1f} items/s")
        ratio = result["unsigned_over_stored"]
        print(f"  unsigned / stored: batch 1 {ratio['batch_1']:.2f}, sorted runs of 32 {ratio['sorted_32']:.2f}")


if __name__ == "__main__":
    main()
