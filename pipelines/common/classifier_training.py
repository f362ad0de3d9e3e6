"""Fine-tuning the base encoder for sequence classification (the mean-pooling head)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipelines.common.args import TrainingArgs
from pipelines.common.base_model import base_model_path, force_offline
from pipelines.common.data import Example
from pipelines.common.training import TrainedModel, fine_tune, seed_everything

__all__ = ["train_classifier", "predict_torch"]


def predict_torch(model, tokenizer, texts: Sequence[str], max_length: int, batch_size: int = 64) -> np.ndarray:
    """Class probabilities from a torch model, in input order (used for dev evaluation)."""
    import torch

    model.eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    probs = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            enc = tokenizer([texts[i] for i in chunk], padding=True, truncation=True,
                            max_length=max_length, return_tensors="pt")
            probs[chunk] = torch.softmax(model(**enc).logits, dim=-1).numpy()
    return probs


def train_classifier(
    train: Sequence[Example],
    dev: Sequence[Example],
    labels: Sequence[str],
    args: TrainingArgs,
    out_dir: Path,
) -> TrainedModel:
    """Fine-tune the base encoder on ``train``; keep the epoch with the best dev accuracy.

    Args:
        train (`Sequence[Example]`): training rows; ``label`` must be one of ``labels``.
        dev (`Sequence[Example]`): rows for model selection.
        labels (`Sequence[str]`): the label set, in the order of the output layer.
        args (`TrainingArgs`): hyper-parameters.
        out_dir (`Path`): where the best checkpoint is written (a Hugging Face folder).
    """
    force_offline()
    import torch
    from transformers import AutoTokenizer

    from pipelines.common.modeling import MeanPoolingClassifier

    seed_everything(args.seed)
    label_to_id = {label: i for i, label in enumerate(labels)}
    base = base_model_path()
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = MeanPoolingClassifier.from_pretrained(
        base,
        num_labels=len(labels),
        id2label={i: label for i, label in enumerate(labels)},
        label2id=label_to_id,
    )
    texts = [ex.text for ex in train]
    targets = torch.tensor([label_to_id[ex.label] for ex in train], dtype=torch.long)
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=args.max_length)["input_ids"]]
    dev_texts = [ex.text for ex in dev]
    dev_gold = np.array([label_to_id[ex.label] for ex in dev])

    def make_batch(idx: np.ndarray) -> dict:
        enc = tokenizer([texts[j] for j in idx], padding=True, truncation=True,
                        max_length=args.max_length, return_tensors="pt")
        return {**enc, "labels": targets[idx]}

    def dev_accuracy() -> float:
        probs = predict_torch(model, tokenizer, dev_texts, args.max_length)
        return float((probs.argmax(axis=1) == dev_gold).mean()) if len(dev) else 0.0

    return fine_tune(model, tokenizer, lengths, make_batch, dev_accuracy, args, out_dir)
