"""Train, export and evaluate a sequence-classification task end to end.

``train_task`` is what ``slm train <task>`` runs: read and split the data, fine-tune,
export to ONNX int8, check int8 against fp32, pick the review threshold on dev, evaluate
on the test file and write the model folder with its card.
"""

from __future__ import annotations

import hashlib
import logging
import random
import shutil
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
from pipelines.common.export import cpu_quantization_preset, export_int8
from pipelines.common.metrics import agreement, classification_metrics
from shared.errors import DataError, ModelError
from shared.runtime import ModelInfo, OnnxTextClassifier, read_model_info, write_model_info
from shared.tasks import model_text

__all__ = ["evaluate_model", "pick_review_threshold", "rename_labels", "train_task"]

logger = logging.getLogger(__name__)

# Results scoring under the threshold go to review; it is set so that the items kept
# out of review are right this often on dev, within these bounds.
REVIEW_TARGET_PRECISION = 0.95
REVIEW_THRESHOLD_BOUNDS = (0.5, 0.95)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def rename_labels(examples: list[Example], label_names: dict[str, str]) -> list[Example]:
    if not label_names:
        return examples
    return [replace(ex, label=label_names.get(ex.label, ex.label)) for ex in examples]


def _as_model_inputs(examples: Sequence[Example]) -> list[Example]:
    return [replace(ex, text=model_text(ex.text, ex.fields)) for ex in examples]


def pick_review_threshold(scores: np.ndarray, correct: np.ndarray) -> float:
    """Smallest score t such that items scoring >= t are right REVIEW_TARGET_PRECISION of the time."""
    low, high = REVIEW_THRESHOLD_BOUNDS
    for hundredths in range(round(low * 100), round(high * 100) + 1):
        threshold = hundredths / 100
        kept = scores >= threshold
        if kept.any() and correct[kept].mean() >= REVIEW_TARGET_PRECISION:
            return threshold
    return high


def _subsample(examples: list[Example], limit: int | None, seed: int) -> list[Example]:
    if limit is None or len(examples) <= limit:
        return examples
    return random.Random(seed).sample(examples, limit)


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
    train = _subsample(train, args.max_train_examples, args.seed)
    dev = _subsample(dev, args.max_dev_examples, args.seed)
    test = _subsample(test, args.max_test_examples, args.seed)
    # Label order: the task's known names first (stable across retrains), then any others sorted.
    seen = {ex.label for ex in train}
    labels = [name for name in label_names.values() if name in seen] + sorted(seen - set(label_names.values()))
    if len(labels) < 2:
        raise DataError(f"{train_file}: training data has {len(labels)} label(s) ({labels}); need at least 2")
    splits = Splits(
        train=_as_model_inputs(train),
        dev=[ex for ex in _as_model_inputs(dev) if ex.label in seen],
        test=_as_model_inputs(test),
        labels=labels,
    )
    logger.info('task=%s train=%d dev=%d test=%d labels=%d', task, len(splits.train), len(splits.dev),
                len(splits.test), len(labels))
    provenance = {
        "base_model": BASE_MODEL_NAME,
        "args": args.to_dict(),
        "label_names": label_names,
        "data": {
            "train": {"file": str(train_file), "sha256": file_sha256(train_file), "rows_used": len(splits.train)},
            "dev": {"file": str(dev_file or train_file), "rows_used": len(splits.dev)},
            **({"test": {"file": str(eval_file), "sha256": file_sha256(eval_file)}} if eval_file else {}),
        },
    }
    info = ModelInfo(task=task, name=model_name or f"{task}-minilm-l6",
                     version=datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ"), labels=labels,
                     review_threshold=REVIEW_THRESHOLD_BOUNDS[0], max_length=args.max_length,
                     columns=columns.to_dict(), training=provenance)

    # Build beside the destination and swap in only a checked model: a failed or interrupted
    # run never leaves a half-written or degraded model where a service would load it.
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    build_dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        _build_model(build_dir, info, splits, args)
        info.training["total_seconds"] = round(time.perf_counter() - started, 1)
        write_model_info(build_dir, info)
        _swap_into_place(build_dir, out_dir)
    except BaseException:
        shutil.rmtree(build_dir, ignore_errors=True)
        raise
    return info


def _swap_into_place(build_dir: Path, out_dir: Path) -> None:
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{build_dir.name.rsplit('-', 1)[-1]}")
        out_dir.rename(old)
        build_dir.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        build_dir.rename(out_dir)


@dataclass(frozen=True)
class Splits:
    """Model inputs (text with fields folded in) of each split, and the label set."""

    train: list[Example]
    dev: list[Example]
    test: list[Example]
    labels: list[str]


def _build_model(out_dir: Path, info: ModelInfo, splits: Splits, args: TrainingArgs) -> None:
    """Fine-tune, export, check int8 against fp32, pick the threshold and evaluate, into ``out_dir``.

    Fills ``info`` (threshold, metrics, training details) and writes the card.
    """
    labels, dev_in, test_in = splits.labels, splits.dev, splits.test
    with tempfile.TemporaryDirectory(prefix="slm-train-") as tmp:
        trained = train_classifier(splits.train, dev_in, labels, args, Path(tmp) / "checkpoint")
        export_int8(trained.checkpoint_dir, out_dir)
    info.training.update({
        "best_epoch": trained.best_epoch,
        "history": trained.history,
        "train_seconds": round(trained.train_seconds, 1),
        "quantization": {"mode": "dynamic int8", "per_channel": True, "preset": cpu_quantization_preset()},
    })
    # The runtime reads slm_model.json, so write a provisional one before loading for checks.
    write_model_info(out_dir, info)

    int8 = OnnxTextClassifier(out_dir)
    fp32 = OnnxTextClassifier(out_dir, onnx_file="model.fp32.onnx")
    dev_gold = [ex.label for ex in dev_in]
    dev_probs = _predict_probs(int8, dev_in, "dev int8")
    dev_int8 = [labels[i] for i in dev_probs.argmax(axis=1)]
    dev_fp32 = _predict_labels(fp32, dev_in, "dev fp32")
    int8_agreement = agreement(dev_int8, dev_fp32)
    if int8_agreement < args.int8_min_agreement:
        raise ModelError(
            f"int8 model agrees with fp32 on only {int8_agreement:.3f} of dev items "
            f"(minimum {args.int8_min_agreement}); not saving a degraded model"
        )
    info.review_threshold = pick_review_threshold(dev_probs.max(axis=1), np.array(dev_gold) == np.array(dev_int8))
    info.metrics = {
        "dev": {
            "int8": classification_metrics(dev_gold, dev_int8, labels),
            "fp32": classification_metrics(dev_gold, dev_fp32, labels),
            "int8_fp32_agreement": int8_agreement,
        }
    }
    if test_in:
        test_gold = [ex.label for ex in test_in]
        # Labels only the test file has still count (as misses) in macro-F1, as in evaluate_model.
        scored = labels + sorted(set(test_gold) - set(labels))
        info.metrics["test"] = {
            "int8": classification_metrics(test_gold, _predict_labels(int8, test_in, "test int8"), scored),
            "fp32": classification_metrics(test_gold, _predict_labels(fp32, test_in, "test fp32"), scored),
        }
    headline = info.metrics.get("test", info.metrics["dev"])["int8"]
    write_card(out_dir / "card", title=f"{info.name} {info.version} (int8)", metrics=headline,
               details={"model": info.model_id, "review_threshold": info.review_threshold, **info.training})


def evaluate_model(
    model_dir: Path,
    data_file: Path,
    *,
    columns: ColumnMapping | None = None,
    label_names: dict[str, str] | None = None,
    card_dir: Path | None = None,
) -> dict:
    """Metrics of the int8 model on ``data_file``; writes a card with a confusion matrix."""
    info = read_model_info(model_dir)
    if columns is None:
        columns = ColumnMapping.from_dict(info.columns) if info.columns else ColumnMapping()
    if label_names is None:
        label_names = info.training.get("label_names", {})
    examples = _as_model_inputs(rename_labels(read_examples(data_file, columns), label_names))
    model = OnnxTextClassifier(model_dir)
    predicted = _predict_labels(model, examples, f"evaluate {Path(data_file).name}")
    gold = [ex.label for ex in examples]
    unknown = sorted({g for g in gold} - set(info.labels))
    metrics = classification_metrics(gold, predicted, list(info.labels) + unknown)
    metrics["model"] = info.model_id
    metrics["data"] = {"file": str(data_file), "sha256": file_sha256(data_file)}
    if unknown:
        metrics["labels_unknown_to_model"] = unknown
    card_dir = card_dir or (Path(model_dir) / f"eval-{Path(data_file).name.split('.')[0]}")
    write_card(card_dir, title=f"{info.model_id} on {Path(data_file).name}", metrics=metrics,
               details={"model": info.model_id, "data": metrics["data"]})
    metrics["card"] = str(card_dir / "card.md")
    return metrics
