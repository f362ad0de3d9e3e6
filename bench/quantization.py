"""Static against dynamic int8, per model folder: agreement with fp32, test quality, speed, and
whether an item's scores depend on the other items in its run.

    python -m bench.quantization [MODEL_DIR ...]     (default: models/<task> of each task)

Needs each folder's fp32 graph (``make train-<task>`` writes it; release folders leave it out)
and the training file its card names (for static calibration when the folder serves another
precision). Both int8 graphs are made from the same fp32 graph, calibrated on the training's own
calibration items (:mod:`pipelines.recipe`); the test file is the card's, as the training scored it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pipelines.common.args import TrainingArgs
from pipelines.common.export import FP32_FILE
from pipelines.common.model_output import resolve_recorded_path, subsample
from pipelines.common.quantize import prepare_for_quantization, quantize_dynamic_int8, quantize_static_int8
from pipelines.kinds import recipe_class
from pipelines.recipe import read_training_data
from shared.runtime import read_model_info
from shared.task_kinds import kind_named

__all__ = ["compare_quantizations"]

BATCH = 32
SCORED_ALONE = 100  # test items scored one by one and in one run, to see whether a run changes an item's scores


def compare_quantizations(model_dir: Path) -> dict:
    """fp32, static int8 and dynamic int8 of one folder, side by side."""
    info = read_model_info(model_dir, graph=FP32_FILE)
    recipe = recipe_class(kind_named(info.kind, model_dir)).for_model(info)
    args = TrainingArgs.from_dict(info.training.get("args", {}))
    files = info.training["data"]
    # The training's own splits and calibration items (the dev file is read only where dev was not carved).
    data = read_training_data(recipe, resolve_recorded_path(files["train"]["file"]), args,
                              dev_file=None if files["dev"].get("carved_from") == "train"
                              else resolve_recorded_path(files["dev"]["file"]),
                              eval_file=resolve_recorded_path(files["test"]["file"]))
    fp32 = recipe.kind.load_model(model_dir, onnx_file=FP32_FILE, info=info)
    calibration = recipe.calibration_batches(fp32, subsample(data.train, recipe.calibration_items, args.seed))
    metric = recipe.kind.quality_metric
    report: dict = {"model": info.model_id, "served": info.precision}
    with tempfile.TemporaryDirectory(prefix="slm-bench-quant-") as tmp:
        prepared = prepare_for_quantization(model_dir / FP32_FILE, Path(tmp) / "prepared.onnx")
        fp32_layers = info.training.get("quantization", {}).get("fp32_layers", [])
        graphs = {"fp32": FP32_FILE,
                  "int8-static": str(quantize_static_int8(prepared, Path(tmp) / "static.onnx", calibration,
                                                          fp32_layers)),
                  "int8-dynamic": str(quantize_dynamic_int8(model_dir / FP32_FILE, Path(tmp) / "dynamic.onnx"))}
        reference = None
        for name, graph in graphs.items():
            model = recipe.kind.load_model(model_dir, onnx_file=graph, max_batch_size=BATCH, info=info)
            recipe.predict(model, data.test, name)  # warm-up: session start, first allocations
            started = time.perf_counter()
            outputs = recipe.predict(model, data.test, name)
            seconds = time.perf_counter() - started
            reference = outputs if reference is None else reference
            sample = data.test[:SCORED_ALONE]
            batch_scores = recipe.item_scores(model, sample)
            alone_scores = np.concatenate([recipe.item_scores(model, [item]) for item in sample])
            test = recipe.test_scores(data.test, outputs, model.labels)
            report[name] = {"agreement_with_fp32": round(recipe.agreement(reference, outputs), 4),
                            f"test_{metric}": round(getattr(test, metric), 4),
                            "items_per_s": round(len(data.test) / seconds, 1),
                            "size_mb": round((model_dir / graph).stat().st_size / 1e6, 1),
                            # 0 when an item's scores do not depend on what else is in its run
                            "max_score_change_alone_vs_batched": float(np.abs(batch_scores - alone_scores).max())}
    return report


def main(argv: list[str] | None = None) -> int:
    from shared.installed_models import installed_folders

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dirs", type=Path, nargs="*")
    args = parser.parse_args(argv)
    for model_dir in args.model_dirs or installed_folders():
        if not (model_dir / FP32_FILE).is_file():
            print(f"{model_dir}: no {FP32_FILE} (release folders ship the served graph only); "
                  "`make train-<task>` writes it", file=sys.stderr)
            continue
        print(json.dumps(compare_quantizations(model_dir)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
