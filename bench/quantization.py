"""Static against dynamic int8, per model folder: agreement with fp32, test quality, speed, and
whether an item's scores depend on the other items in its run.

    python -m bench.quantization [MODEL_DIR ...]     (default: models/<task> of each task)

Needs each folder's fp32 graph (``make train-<task>`` writes it; release folders leave it out)
and the training file its card names (for static calibration when the folder serves another
precision). Both int8 graphs are made from the same fp32 graph; the test file is the card's.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipelines.common.export import FP32_FILE
from pipelines.common.model_output import resolve_recorded_path, subsample
from pipelines.common.quantize import prepare_for_quantization, quantize_dynamic_int8, quantize_static_int8
from shared.runtime import read_model_info

__all__ = ["compare_quantizations"]

BATCH = 32


def _classification_case(model_dir: Path, info) -> tuple[list, Callable, Callable]:
    """(calibration batches, predictor factory, agreement) for a classifier folder."""
    from pipelines.classification import CALIBRATION_ITEMS, as_model_inputs, calibration_batches, rename_labels
    from pipelines.common.data import ColumnMapping, read_examples, split_dev
    from shared.runtime import OnnxTextClassifier

    args = info.training.get("args", {})
    columns = ColumnMapping.from_dict(info.columns)
    names = info.training.get("label_names", {})
    data = info.training["data"]
    train = rename_labels(read_examples(resolve_recorded_path(data["train"]["file"]), columns), names)
    if data["dev"].get("carved_from") == "train":
        train, _ = split_dev(train, args.get("dev_fraction", 0.1), args.get("seed", 42))
    test = as_model_inputs(rename_labels(read_examples(resolve_recorded_path(data["test"]["file"]), columns), names))
    fp32 = OnnxTextClassifier(model_dir, onnx_file=FP32_FILE)
    calibration = calibration_batches(fp32, subsample(as_model_inputs(train), CALIBRATION_ITEMS, args.get("seed", 42)))
    texts = [ex.text for ex in test]
    gold = np.array([ex.label for ex in test])

    def run(graph: str):
        model = OnnxTextClassifier(model_dir, onnx_file=graph, max_batch_size=BATCH)
        return lambda: model.predict_proba(texts), lambda: model.predict_proba(texts[:200]), \
            lambda: np.concatenate([model.predict_proba([t]) for t in texts[:200]])

    def quality(probs, reference) -> dict:
        labels = np.array(fp32.labels)
        predicted, expected = labels[probs.argmax(1)], labels[reference.argmax(1)]
        return {"agreement_with_fp32": round(float(np.mean(predicted == expected)), 4),
                "test_accuracy": round(float(np.mean(predicted == gold)), 4)}

    return calibration, run, quality


def _entities_case(model_dir: Path, info) -> tuple[list, Callable, Callable]:
    """(calibration batches, predictor factory, agreement) for an entities folder."""
    from pipelines.common.metrics import entity_metrics
    from pipelines.common.token_files import read_conll
    from pipelines.token_classification import (CALIBRATION_SENTENCES, calibration_batches, predicted_spans,
                                                split_dev_sentences)
    from shared.runtime import OnnxEntityRecognizer

    args = info.training.get("args", {})
    data = info.training["data"]
    context = args.get("context_words", 0)
    train = read_conll(resolve_recorded_path(data["train"]["file"]), context)
    if data["dev"].get("carved_from") == "train":
        train, _ = split_dev_sentences(train, args.get("dev_fraction", 0.1), args.get("seed", 42))
    test = read_conll(resolve_recorded_path(data["test"]["file"]), context)
    fp32 = OnnxEntityRecognizer(model_dir, onnx_file=FP32_FILE)
    calibration = calibration_batches(fp32, subsample(train, CALIBRATION_SENTENCES, args.get("seed", 42)))
    gold = [list(s.spans) for s in test]

    def run(graph: str):
        model = OnnxEntityRecognizer(model_dir, onnx_file=graph, max_batch_size=BATCH)

        def scores(sentences):
            return np.concatenate([p.ravel() for p in model.tagger.token_probs(
                [" ".join(s.tokens) for s in sentences], [model.tagger.encode(" ".join(s.tokens)) for s in sentences],
                model.run_logits, BATCH)])

        return (lambda: predicted_spans(model.tagger, test, model.run_logits, BATCH)[0],
                lambda: scores(test[:100]), lambda: np.concatenate([scores([s]) for s in test[:100]]))

    def quality(spans, reference) -> dict:
        return {"agreement_with_fp32": round(entity_metrics(reference, spans)["f1"], 4),
                "test_f1": round(entity_metrics(gold, spans)["f1"], 4)}

    return calibration, run, quality


def compare_quantizations(model_dir: Path) -> dict:
    """fp32, static int8 and dynamic int8 of one folder, side by side."""
    info = read_model_info(model_dir, graph=FP32_FILE)
    case = _entities_case if info.kind == "entities" else _classification_case
    calibration, run, quality = case(model_dir, info)
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
            full, batched, alone = run(graph)
            full()  # warm-up: session start, first allocations
            started = time.perf_counter()
            outputs = full()
            seconds = time.perf_counter() - started
            reference = outputs if reference is None else reference
            batch_scores, alone_scores = batched(), alone()
            report[name] = {**quality(outputs, reference), "items_per_s": round(len(outputs) / seconds, 1),
                            "size_mb": round((model_dir / graph).stat().st_size / 1e6, 1),
                            # 0 when an item's scores do not depend on what else is in its run
                            "max_score_change_alone_vs_batched": float(np.abs(batch_scores - alone_scores).max())}
    return report


def main(argv: list[str] | None = None) -> int:
    from slm.models import installed_folders

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
