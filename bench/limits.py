"""The model's own limit: the int8 graph alone (tokenizer + ONNX Runtime), no server, no broker.

Every figure includes tokenization (the runtime's ``predict_proba``/``predict`` from texts):

- **batch 1**: one item per run; its time per item (``batch1_ms``) is the yardstick of every
  latency the benchmark reports;
- **arrival order**: batches of N cut from the texts as they come, each sorted inside by the runtime
  (what a first-in-first-out batcher gets);
- **length-sorted run shapes**: the texts sorted by token count first (the sort is not timed: it is
  the batcher's work), then cut into runs of at most N items and at most T padded tokens (items x
  the longest) by the runtime's own ``length_runs``.

The best of them is the **best limit**, the yardstick of every throughput.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

__all__ = ["measure_limit", "measure_torch_limit", "model_inputs", "shape_name", "tokens_per_item"]


def model_inputs(model_dir: Path, requests: list[dict]) -> list[str]:
    """The texts the model sees for request rows (a kind may add fields to the text)."""
    from shared.runtime import read_model_info
    from shared.task_kinds import kind_named

    info = read_model_info(model_dir)
    kind, fields = kind_named(info.kind, model_dir), info.columns.get("fields", [])
    return [kind.model_text(r["text"], r.get("fields", {}), fields) for r in requests]


def _token_counts(model_dir: Path, texts: list[str], truncate: bool) -> list[int]:
    from tokenizers import Tokenizer

    from shared.runtime import read_model_info

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    if truncate:
        tokenizer.enable_truncation(max_length=read_model_info(model_dir).max_length)
    else:
        tokenizer.no_truncation()
    tokenizer.no_padding()  # a saved tokenizer may pad every input to the longest of the batch
    return [len(e.ids) for e in tokenizer.encode_batch(texts)]


def tokens_per_item(model_dir: Path, texts: list[str]) -> float:
    """Mean tokens per input (special tokens included, no truncation): items/s times this is tokens/s."""
    return round(float(np.mean(_token_counts(model_dir, texts, truncate=False))), 1)


def shape_name(batch: int, tokens: int | None) -> str:
    """``sorted 32`` or ``sorted 64/512tok``: how results name a length-sorted run shape."""
    return f"sorted {batch}" if tokens is None else f"sorted {batch}/{tokens}tok"


def _items_per_s(run, calls: list[list[str]]) -> float:
    run(calls[0][:8])  # warm-up: the first run allocates
    started = time.perf_counter()
    for texts in calls:
        run(texts)
    return round(sum(len(t) for t in calls) / (time.perf_counter() - started), 1)


def measure_limit(model_dir: Path, texts: list[str], batch_sizes: list[int],
                  shapes: list[tuple[int, int | None]], onnx_file: str = "model.onnx") -> dict:
    """Items/s of the model alone: batch 1, arrival-order batches, length-sorted run shapes.

    Args:
        model_dir (`Path`): the model folder.
        texts (`list[str]`): model inputs, in arrival order.
        batch_sizes (`list[int]`): arrival-order batch sizes (1 gives ``batch1_ms``).
        shapes (`list[tuple[int, int | None]]`): length-sorted run shapes, (most items, most padded
            tokens or None).
        onnx_file (`str`, defaults to `"model.onnx"`): the graph.

    Returns:
        ``items_per_s`` and ``best_batch`` (the best of all), ``batch1_ms``, ``by_batch`` (every
        figure by name: ``1``, ``32``, ``sorted 64/512tok``).
    """
    from shared.runtime import read_model_info
    from shared.task_kinds import kind_named

    kind = kind_named(read_model_info(model_dir).kind, model_dir)

    def runner(batch: int, tokens: int | None):
        model = kind.load_model(model_dir, max_batch_size=batch, onnx_file=onnx_file, max_batch_tokens=tokens)
        return getattr(model, "predict_proba", model.predict)  # a classifier's probabilities, no result objects

    by_batch: dict[str, float] = {}
    for batch in batch_sizes:
        calls = [texts[k:k + batch] for k in range(0, len(texts), batch)]
        by_batch[str(batch)] = _items_per_s(runner(batch, None), calls)
    counts = _token_counts(model_dir, texts, truncate=True)
    ordered = [texts[i] for i in np.argsort(counts, kind="stable")]
    for batch, tokens in shapes:
        # Several runs per call, as a batcher hands over what is queued; the runtime cuts them.
        calls = [ordered[k:k + batch * 8] for k in range(0, len(ordered), batch * 8)]
        by_batch[shape_name(batch, tokens)] = _items_per_s(runner(batch, tokens), calls)
    best = max(by_batch, key=by_batch.get)
    out = {"items_per_s": by_batch[best], "best_batch": best, "by_batch": by_batch}
    if "1" in by_batch:
        out["batch1_ms"] = round(1000 / by_batch["1"], 2)
    return out


def measure_torch_limit(checkpoint: Path, model_dir: Path, texts: list[str], batch_sizes: list[int]) -> dict:
    """Items/s of the peers' torch model (fp32; fp16 on a GPU), batches sorted by length."""
    from bench.peers.peer_model import PeerModel

    model = PeerModel(checkpoint, model_dir)
    by_batch = {}
    for batch in batch_sizes:
        model.classify(texts[:batch])  # warm-up
        started = time.perf_counter()
        for start in range(0, len(texts), batch * 8):
            chunk = sorted(texts[start:start + batch * 8], key=len)
            for k in range(0, len(chunk), batch):
                model.classify(chunk[k:k + batch])
        by_batch[batch] = round(len(texts) / (time.perf_counter() - started), 1)
    best = max(by_batch, key=by_batch.get)
    return {"items_per_s": by_batch[best], "best_batch": best, "by_batch": by_batch, "device": model.device}
