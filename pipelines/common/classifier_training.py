"""Fine-tuning the base encoder for sequence classification: a plain torch loop.

A hand-written loop instead of ``transformers.Trainer`` keeps the dependency set small
(no accelerate) and makes every step visible: dynamic padding, linear warm-up and decay,
one dev evaluation per epoch, the best epoch kept.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from pipelines.common.args import TrainingArgs
from pipelines.common.base_model import base_model_path, force_offline
from pipelines.common.data import Example

__all__ = ["TrainedClassifier", "train_classifier", "predict_torch"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainedClassifier:
    """Result of :func:`train_classifier`: a Hugging Face checkpoint folder and its history."""

    checkpoint_dir: Path
    labels: list[str]
    best_epoch: int
    dev_accuracy: float
    train_seconds: float
    history: list[dict]


def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _batches(items: Sequence, size: int) -> list[Sequence]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def predict_torch(model, tokenizer, texts: Sequence[str], max_length: int, batch_size: int = 64) -> np.ndarray:
    """Class probabilities from a torch model, in input order (used for dev evaluation)."""
    import torch

    model.eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    probs = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    with torch.inference_mode():
        for chunk in _batches(order, batch_size):
            enc = tokenizer([texts[i] for i in chunk], padding=True, truncation=True,
                            max_length=max_length, return_tensors="pt")
            logits = model(**enc).logits
            probs[list(chunk)] = torch.softmax(logits, dim=-1).numpy()
    return probs


def train_classifier(
    train: Sequence[Example],
    dev: Sequence[Example],
    labels: Sequence[str],
    args: TrainingArgs,
    out_dir: Path,
) -> TrainedClassifier:
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
    from transformers import AutoTokenizer, get_linear_schedule_with_warmup

    from pipelines.common.modeling import MeanPoolingClassifier

    _seed_everything(args.seed)
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
    steps_per_epoch = math.ceil(len(train) / args.batch_size)
    total_steps = max(1, int(steps_per_epoch * args.epochs))
    no_decay = ("bias", "LayerNorm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)], "weight_decay": args.weight_decay},
        {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=args.learning_rate)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total_steps * args.warmup_ratio), total_steps)

    out_dir.mkdir(parents=True, exist_ok=True)
    history: list[dict] = []
    best_accuracy, best_epoch = -1.0, 0
    dev_texts = [ex.text for ex in dev]
    dev_gold = np.array([label_to_id[ex.label] for ex in dev])
    started = time.perf_counter()
    step = 0
    rng = np.random.default_rng(args.seed)
    n_epochs = math.ceil(args.epochs)
    for epoch in range(1, n_epochs + 1):
        model.train()
        order = rng.permutation(len(train))
        epoch_steps = min(steps_per_epoch, total_steps - step)
        losses: list[float] = []
        bar = tqdm(range(epoch_steps), desc=f"train epoch {epoch}/{n_epochs}", unit="step", leave=False)
        for i in bar:
            idx = order[i * args.batch_size : (i + 1) * args.batch_size]
            enc = tokenizer([texts[j] for j in idx], padding=True, truncation=True,
                            max_length=args.max_length, return_tensors="pt")
            out = model(**enc, labels=targets[idx])
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(out.loss.item())
            step += 1
            if i % 10 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        probs = predict_torch(model, tokenizer, dev_texts, args.max_length)
        accuracy = float((probs.argmax(axis=1) == dev_gold).mean()) if len(dev) else 0.0
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else None,
                        "dev_accuracy": accuracy})
        logger.info('epoch=%d train_loss="%.4f" dev_accuracy="%.4f"', epoch, history[-1]["train_loss"] or 0, accuracy)
        if accuracy > best_accuracy:
            best_accuracy, best_epoch = accuracy, epoch
            model.save_pretrained(out_dir)
            tokenizer.save_pretrained(out_dir)
        if step >= total_steps:
            break
    return TrainedClassifier(
        checkpoint_dir=out_dir,
        labels=list(labels),
        best_epoch=best_epoch,
        dev_accuracy=best_accuracy,
        train_seconds=time.perf_counter() - started,
        history=history,
    )
