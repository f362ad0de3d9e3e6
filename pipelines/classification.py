"""Train, export and evaluate a sequence-classification task end to end.

``train_task`` is what ``slm train <task>`` runs: read and split the data, fine-tune,
export to ONNX int8, check int8 against fp32, pick the review threshold on dev, evaluate
on the test file and write the model folder with its card.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from pipelines.common.args import TrainingArgs
from pipelines.common.base_model import BASE_MODEL_NAME
from pipelines.common.card import write_card
from pipelines.common.classifier_training import train_classifier
from pipelines.common.data import ColumnMapping, Example, read_examples, split_dev
from pipelines.common.export import FP32_FILE, cpu_quantization_preset, export_fp32
from pipelines.common.baseline import BASELINE_NAME, tfidf_svm_baseline, tfidf_svm_predictions
from pipelines.common.metrics import agreement, classification_metrics, top_k_accuracy
from pipelines.common.quantize import choose_served_graph
from pipelines.common.model_output import (
    REVIEW_THRESHOLD_BOUNDS,
    building,
    code_provenance,
    data_provenance,
    file_sha256,
    pick_review_threshold,
    evaluation_card_dir,
    recorded_path,
    resolve_recorded_path,
    subsample,
)
from shared.errors import DataError, ModelError
from shared.runtime import ModelInfo, OnnxTextClassifier, read_model_info, write_model_info
from shared.model_text import model_text

__all__ = ["CALIBRATION_ITEMS", "as_model_inputs", "calibration_batches", "evaluate_model", "rename_labels",
           "seen_and_unseen", "train_task"]

logger = logging.getLogger(__name__)

# Training items whose activation ranges calibrate static int8, fed in runs of this size.
CALIBRATION_ITEMS = 512
CALIBRATION_BATCH = 16

def rename_labels(examples: list[Example], label_names: dict[str, str]) -> list[Example]:
    if not label_names:
        return examples
    return [replace(ex, label=label_names.get(ex.label, ex.label)) for ex in examples]


def as_model_inputs(examples: Sequence[Example]) -> list[Example]:
    return [replace(ex, text=model_text(ex.text, ex.fields)) for ex in examples]


def _predict_probs(model: OnnxTextClassifier, examples: Sequence[Example], desc: str) -> np.ndarray:
    """Class probabilities for ``examples``, in chunks so the progress bar moves."""
    from tqdm.auto import tqdm

    texts = [ex.text for ex in examples]
    chunks = [model.predict_proba(texts[i : i + 256]) for i in tqdm(range(0, len(texts), 256), desc=desc,
                                                                     unit="chunk", leave=False)]
    return np.concatenate(chunks) if chunks else np.zeros((0, len(model.labels)), dtype=np.float32)


def _predict_labels(model: OnnxTextClassifier, examples: Sequence[Example], desc: str = "predict") -> list[str]:
    return [model.labels[i] for i in _predict_probs(model, examples, desc).argmax(axis=1)]


def train_task(
    task: str,
    train_file: Path,
    out_dir: Path,
    columns: ColumnMapping,
    args: TrainingArgs,
    *,
    eval_file: Path | None = None,
    dev_file: Path | None = None,
    label_names: dict[str, str] | None = None,
    model_name: str | None = None,
) -> ModelInfo:
    """Fine-tune, export and evaluate; returns the :class:`ModelInfo` written to ``out_dir``."""
    label_names = label_names or {}
    started = time.perf_counter()
    train = rename_labels(read_examples(train_file, columns), label_names)
    if dev_file is not None:
        dev = rename_labels(read_examples(dev_file, columns), label_names)
    else:
        train, dev = split_dev(train, args.dev_fraction, args.seed)
    if not dev:
        raise DataError(f"{train_file}: too few rows to carve out a dev split; pass a dev file")
    test = rename_labels(read_examples(eval_file, columns), label_names) if eval_file else []
    train = subsample(train, args.max_train_examples, args.seed)
    dev = subsample(dev, args.max_dev_examples, args.seed)
    test = subsample(test, args.max_test_examples, args.seed)
    # Label order: the task's known names first (stable across retrains), then any others sorted.
    seen = {ex.label for ex in train}
    labels = [name for name in label_names.values() if name in seen] + sorted(seen - set(label_names.values()))
    if len(labels) < 2:
        raise DataError(f"{train_file}: training data has {len(labels)} label(s) ({labels}); need at least 2")
    splits = Splits(
        train=as_model_inputs(train),
        dev=[ex for ex in as_model_inputs(dev) if ex.label in seen],
        test=as_model_inputs(test),
        labels=labels,
        raw_train=train,
        raw_test=test,
    )
    logger.info('task=%s train=%d dev=%d test=%d labels=%d', task, len(splits.train), len(splits.dev),
                len(splits.test), len(labels))
    provenance = {
        "base_model": BASE_MODEL_NAME,
        "code": code_provenance(),
        "args": args.to_dict(),
        "label_names": label_names,
        "data": data_provenance(train_file, len(splits.train), dev_file, len(splits.dev), eval_file),
    }
    info = ModelInfo(task=task, name=model_name or f"{task}-minilm-l6",
                     version=datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ"), labels=labels,
                     review_threshold=REVIEW_THRESHOLD_BOUNDS[0], max_length=args.max_length,
                     columns=columns.to_dict(), training=provenance)

    with building(out_dir) as build_dir:
        _build_model(build_dir, info, splits, args)
        info.training["total_seconds"] = round(time.perf_counter() - started, 1)
        write_model_info(build_dir, info)
    return info


@dataclass(frozen=True)
class Splits:
    """Model inputs (text with fields folded in) of each split, and the label set."""

    train: list[Example]
    dev: list[Example]
    test: list[Example]
    labels: list[str]
    raw_train: list[Example]  # text without fields, for the TF-IDF baseline
    raw_test: list[Example]


def _build_model(out_dir: Path, info: ModelInfo, splits: Splits, args: TrainingArgs) -> None:
    """Fine-tune, export, choose the served graph, pick the threshold and evaluate, into ``out_dir``.

    Fills ``info`` (precision, threshold, metrics, training details) and writes the card.
    """
    with tempfile.TemporaryDirectory(prefix="slm-train-") as tmp:
        trained = train_classifier(splits.train, splits.dev, splits.labels, args, Path(tmp) / "checkpoint")
        export_fp32(trained.checkpoint_dir, out_dir)
    info.training.update({
        "best_epoch": trained.best_epoch,
        "history": trained.history,
        "train_seconds": round(trained.train_seconds, 1),
    })
    _quantize(out_dir, info, splits, args)
    _evaluate_and_describe(out_dir, info, splits, args)


def calibration_batches(model: OnnxTextClassifier, examples: Sequence[Example]) -> list[dict[str, np.ndarray]]:
    """Input batches of ``examples`` (model inputs, fields folded in) as the service feeds them."""
    encodings = model.tokenizer.encode_batch([ex.text for ex in examples])
    return [model.feeds(encodings[i : i + CALIBRATION_BATCH]) for i in range(0, len(encodings), CALIBRATION_BATCH)]


def _quantize(out_dir: Path, info: ModelInfo, splits: Splits, args: TrainingArgs) -> None:
    """``model.onnx``: static int8 calibrated on training items, or the next rung that keeps the
    fp32 model's answers on dev (:func:`pipelines.common.quantize.choose_served_graph`)."""
    # The runtime reads slm_model.json: a provisional one for loading the candidate graphs.
    write_model_info(out_dir, info)
    fp32 = OnnxTextClassifier(out_dir, onnx_file=FP32_FILE)
    dev_fp32 = _predict_probs(fp32, splits.dev, "dev fp32").argmax(axis=1)
    calibration_items = subsample(splits.train, CALIBRATION_ITEMS, args.seed)

    def agrees(graph: Path) -> float:
        candidate = OnnxTextClassifier(out_dir, onnx_file=str(graph))
        return agreement(list(_predict_probs(candidate, splits.dev, "dev int8").argmax(axis=1)), list(dev_fp32))

    served = choose_served_graph(out_dir, calibration_batches(fp32, calibration_items), agrees, args.int8_min_agreement,
                                 require_int8=args.require_int8)
    info.precision = served.precision
    info.training["quantization"] = {**served.to_dict(), "calibration_items": len(calibration_items),
                                     "dynamic_preset": cpu_quantization_preset()}


def _evaluate_and_describe(out_dir: Path, info: ModelInfo, splits: Splits, args: TrainingArgs) -> None:
    """Review threshold on dev, metrics of the served and the fp32 graph, the card."""
    labels, dev_in, test_in = splits.labels, splits.dev, splits.test
    write_model_info(out_dir, info)
    served = OnnxTextClassifier(out_dir)
    fp32 = OnnxTextClassifier(out_dir, onnx_file=FP32_FILE)
    dev_gold = [ex.label for ex in dev_in]
    dev_probs = _predict_probs(served, dev_in, f"dev {info.precision}")
    dev_served = [labels[i] for i in dev_probs.argmax(axis=1)]
    dev_fp32 = _predict_labels(fp32, dev_in, "dev fp32")
    info.review_threshold = pick_review_threshold(dev_probs.max(axis=1), np.array(dev_gold) == np.array(dev_served))
    info.metrics = {
        "dev": {
            "served": classification_metrics(dev_gold, dev_served, labels),
            "fp32": classification_metrics(dev_gold, dev_fp32, labels),
            "agreement_with_fp32": agreement(dev_served, dev_fp32),
        }
    }
    if test_in:
        info.metrics["test"] = {
            "served": _test_metrics(served, test_in, f"test {info.precision}"),
            "fp32": _test_metrics(fp32, test_in, "test fp32"),
        }
        if args.baseline:
            logger.info("fitting the TF-IDF + LinearSVC baseline on %d rows (minutes with many labels)",
                        len(splits.raw_train))
            info.metrics["test"]["baseline"] = tfidf_svm_baseline(splits.raw_train, splits.raw_test, labels)
    headline = info.metrics.get("test", info.metrics["dev"])["served"]
    write_card(out_dir / "card", title=f"{info.name} {info.version} ({info.precision})", metrics=headline,
               details={"model": info.model_id, "precision": info.precision, "labels": info.labels,
                        "review_threshold": info.review_threshold, **info.training})


def _test_metrics(model: OnnxTextClassifier, examples: Sequence[Example], desc: str) -> dict:
    """Accuracy, macro-F1, per-label detail and top-3 accuracy of ``model`` on labelled ``examples``."""
    return _metrics_of_probs([ex.label for ex in examples], _predict_probs(model, examples, desc), model.labels)


def _metrics_of_probs(gold: Sequence[str], probs: np.ndarray, model_labels: Sequence[str]) -> dict:
    """Metrics of predicted probabilities; labels only the test file has still count (as misses),
    so the score is not flattered."""
    predicted = [model_labels[i] for i in probs.argmax(axis=1)]
    metrics = classification_metrics(gold, predicted, list(model_labels) + sorted(set(gold) - set(model_labels)))
    metrics["top3_accuracy"] = top_k_accuracy(gold, probs, model_labels, k=3)
    return metrics


def seen_and_unseen(raw_test: Sequence[Example], raw_train: Sequence[Example], gold: Sequence[str],
                    probs: np.ndarray, model_labels: Sequence[str], baseline: Sequence[str] | None = None) -> dict:
    """Metrics on the test rows whose text (without fields) occurs in the training file, and on the rest.

    For transactions this is merchants seen and unseen in training: a seen merchant is mostly a
    lookup of how it was coded before, an unseen one needs the model to generalise.
    """
    known = {ex.text.strip().lower() for ex in raw_train}
    seen = np.array([ex.text.strip().lower() in known for ex in raw_test])
    report = {}
    for name, mask in (("seen", seen), ("unseen", ~seen)):
        if not mask.any():
            continue
        rows = np.flatnonzero(mask)
        part = _metrics_of_probs([gold[i] for i in rows], probs[rows], model_labels)
        report[name] = {"n": int(len(rows)), "share": round(float(mask.mean()), 4), "accuracy": part["accuracy"],
                        "macro_f1": part["macro_f1"], "top3_accuracy": part["top3_accuracy"]}
        if baseline is not None:
            report[name]["baseline_accuracy"] = float(np.mean([baseline[i] == gold[i] for i in rows]))
    return report


def evaluate_model(
    model_dir: Path,
    data_file: Path,
    *,
    columns: ColumnMapping | None = None,
    label_names: dict[str, str] | None = None,
    card_dir: Path | None = None,
    baseline_train_file: Path | None = None,
) -> dict:
    """Metrics of the int8 model on ``data_file``; writes a card with a confusion matrix.

    With ``baseline_train_file``, a TF-IDF + SVM baseline is fitted on that file and scored
    on the same rows, and its metrics are returned under ``baseline``.
    """
    info = read_model_info(model_dir)
    if columns is None:
        columns = ColumnMapping.from_dict(info.columns) if info.columns else ColumnMapping()
    if label_names is None:
        label_names = info.training.get("label_names", {})
    raw = rename_labels(read_examples(data_file, columns), label_names)
    examples = as_model_inputs(raw)
    model = OnnxTextClassifier(model_dir)
    gold = [ex.label for ex in examples]
    probs = _predict_probs(model, examples, f"evaluate {Path(data_file).name}")
    metrics = _metrics_of_probs(gold, probs, model.labels)
    unknown = sorted(set(gold) - set(info.labels))
    baseline = train = None
    if baseline_train_file is not None:
        train = rename_labels(read_examples(baseline_train_file, columns), label_names)
        started = time.perf_counter()
        baseline = tfidf_svm_predictions(train, raw)
        metrics["baseline"] = {**classification_metrics(gold, baseline, list(info.labels) + unknown),
                               "model": BASELINE_NAME, "seconds": round(time.perf_counter() - started, 1)}
        metrics["baseline"].pop("confusion_matrix")
    train_file = resolve_recorded_path(info.training.get("data", {}).get("train", {}).get("file", ""))
    if train is None and train_file.is_file():
        train = rename_labels(read_examples(train_file, columns), label_names)
    if train is not None:
        metrics["by_seen_text"] = seen_and_unseen(raw, train, gold, probs, model.labels, baseline)
    metrics["model"] = info.model_id
    metrics["data"] = {"file": recorded_path(data_file), "sha256": file_sha256(data_file)}
    if unknown:
        metrics["labels_unknown_to_model"] = unknown
    card_dir = card_dir or evaluation_card_dir(info, data_file)
    write_card(card_dir, title=f"{info.model_id} on {Path(data_file).name}", metrics=metrics,
               details={"model": info.model_id, "data": metrics["data"]})
    metrics["card"] = str(card_dir / "card.md")
    return metrics
