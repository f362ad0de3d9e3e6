"""The fine-tuning loop every task shares: a plain torch loop.

A hand-written loop instead of ``transformers.Trainer`` keeps the dependency set small
(no accelerate) and makes every step visible: length-bucketed batches with dynamic
padding, AdamW with linear warm-up and decay, gradient clipping, one dev evaluation per
epoch and the best epoch kept. What differs between tasks (the head, how a batch is
built, what "better on dev" means) comes in as arguments.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from pipelines.common.args import TrainingArgs

__all__ = ["AVERAGED_EPOCH", "TrainedModel", "average_state_dicts", "fine_tune", "length_bucketed_batches",
           "seed_everything"]

# ``best_epoch`` of a model whose weights are the average of several epochs' weights.
AVERAGED_EPOCH = 0

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainedModel:
    """Result of :func:`fine_tune`: a Hugging Face checkpoint folder and its history."""

    checkpoint_dir: Path
    best_epoch: int
    dev_score: float
    train_seconds: float
    history: list[dict]


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def length_bucketed_batches(lengths: Sequence[int], batch_size: int, rng: np.random.Generator,
                            pool_batches: int = 50) -> list[np.ndarray]:
    """One epoch of training batches whose items have similar lengths, in random order.

    Shuffle, sort each pool of ``pool_batches`` batches by length, cut it into batches and
    shuffle the batches: padding shrinks (a batch of short tickets no longer pads to the one
    long e-mail) while every epoch still sees a fresh random order.
    """
    order = rng.permutation(len(lengths))
    lengths = np.asarray(lengths)
    batches: list[np.ndarray] = []
    pool = batch_size * pool_batches
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def fine_tune(
    model,
    tokenizer,
    lengths: Sequence[int],
    make_batch: Callable[[np.ndarray], dict],
    evaluate: Callable[[], float],
    args: TrainingArgs,
    out_dir: Path,
    metric: str = "dev_accuracy",
) -> TrainedModel:
    """Train ``model`` for ``args.epochs``; save the epoch whose ``evaluate()`` is highest.

    Args:
        model: a ``transformers`` model whose forward returns ``loss`` when given labels.
        tokenizer: saved beside the best checkpoint.
        lengths (`Sequence[int]`): token length of each training item (for bucketing).
        make_batch (`Callable`): item indices -> the model's keyword arguments, labels included.
        evaluate (`Callable`): dev score of the model as it is now (higher is better).
        args (`TrainingArgs`): hyper-parameters.
        out_dir (`Path`): where the best checkpoint is written.
        metric (`str`): name of the dev score in the history and the log.
    """
    import torch
    from transformers import get_linear_schedule_with_warmup

    steps_per_epoch = math.ceil(len(lengths) / args.batch_size)
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
    best_score, best_epoch = -1.0, 0
    kept: list[tuple[float, int, dict]] = []  # the best epochs' weights, for averaging
    started = time.perf_counter()
    step = 0
    rng = np.random.default_rng(args.seed)
    n_epochs = math.ceil(args.epochs)
    for epoch in range(1, n_epochs + 1):
        model.train()
        batches = length_bucketed_batches(lengths, args.batch_size, rng)
        epoch_steps = min(len(batches), total_steps - step)
        losses: list[float] = []
        bar = tqdm(range(epoch_steps), desc=f"train epoch {epoch}/{n_epochs}", unit="step", leave=False)
        for i in bar:
            out = model(**make_batch(batches[i]))
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(out.loss.item())
            step += 1
            if i % 10 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        model.eval()
        score = float(evaluate())
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else None, metric: score})
        logger.info('epoch=%d train_loss="%.4f" %s="%.4f"', epoch, history[-1]["train_loss"] or 0, metric, score)
        if score > best_score:
            best_score, best_epoch = score, epoch
            model.save_pretrained(out_dir)
            tokenizer.save_pretrained(out_dir)
        if args.average_checkpoints > 1:
            kept = _keep_best(kept, score, epoch, model, args.average_checkpoints)
        if step >= total_steps:
            break
    if len(kept) > 1:
        best_score, best_epoch = _try_average(model, tokenizer, kept, evaluate, metric, history, best_score,
                                              best_epoch, out_dir)
    return TrainedModel(checkpoint_dir=out_dir, best_epoch=best_epoch, dev_score=best_score,
                        train_seconds=time.perf_counter() - started, history=history)


def _keep_best(kept: list[tuple[float, int, dict]], score: float, epoch: int, model, count: int
               ) -> list[tuple[float, int, dict]]:
    """The ``count`` best epochs so far (by dev score), each with a CPU copy of its weights."""
    state = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    return sorted([*kept, (score, epoch, state)], key=lambda k: k[0], reverse=True)[:count]


def average_state_dicts(states: Sequence[dict]) -> dict:
    """Element-wise mean of floating-point weights; other tensors (index buffers) from the first."""
    averaged = {}
    for name, first in states[0].items():
        if first.is_floating_point():
            averaged[name] = sum(state[name] for state in states) / len(states)
        else:
            averaged[name] = first.clone()
    return averaged


def _try_average(model, tokenizer, kept, evaluate, metric: str, history: list[dict], best_score: float,
                 best_epoch: int, out_dir: Path) -> tuple[float, int]:
    """Average the kept epochs' weights; keep the average when its dev score is at least the best epoch's.

    Averaging the weights of a run's best epochs lands in a flatter spot of the loss than any one
    of them, which tends to carry better to data unlike the training set.
    """
    model.load_state_dict(average_state_dicts([state for _, _, state in kept]))
    model.eval()
    score = float(evaluate())
    epochs = sorted(epoch for _, epoch, _ in kept)
    history.append({"epoch": f"average of {epochs}", "train_loss": None, metric: score})
    logger.info('averaged epochs=%s %s="%.4f" best single="%.4f"', epochs, metric, score, best_score)
    if score >= best_score:
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
        return score, AVERAGED_EPOCH
    return best_score, best_epoch
