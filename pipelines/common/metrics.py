"""Classification metrics: accuracy, macro-F1, per-class precision/recall/F1, confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["agreement", "classification_metrics", "entity_metrics", "top_k_accuracy"]


def classification_metrics(gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> dict:
    """Metrics as a JSON-ready dict with top-level ``accuracy`` and ``macro_f1``.

    Labels that occur in neither gold nor predictions are left out of the macro average,
    the way scikit-learn does with ``labels=None``.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    if len(gold) != len(predicted):
        raise ValueError(f"gold has {len(gold)} items but predicted has {len(predicted)}")
    if not gold:
        raise ValueError("cannot compute metrics on an empty evaluation set")
    present = [label for label in labels if label in set(gold) | set(predicted)]
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, predicted, labels=present, zero_division=0
    )
    matrix = confusion_matrix(gold, predicted, labels=list(labels))
    return {
        "accuracy": float(np.mean([g == p for g, p in zip(gold, predicted)])),
        "macro_f1": float(np.mean(f1)),
        "weighted_f1": float(np.average(f1, weights=support)) if support.sum() else 0.0,
        "n": len(gold),
        "per_label": {
            label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for label, p, r, f, s in zip(present, precision, recall, f1, support)
        },
        "confusion_matrix": {"labels": list(labels), "matrix": matrix.tolist()},
    }


def agreement(a: Sequence[str], b: Sequence[str]) -> float:
    """Share of items on which two models predict the same label."""
    if len(a) != len(b) or not a:
        raise ValueError("agreement needs two non-empty prediction lists of equal length")
    return float(np.mean([x == y for x, y in zip(a, b)]))


def top_k_accuracy(gold: Sequence[str], probs: np.ndarray, labels: Sequence[str], k: int = 3) -> float:
    """Share of items whose gold label is among the ``k`` most probable (labels unknown to the model miss)."""
    if len(gold) != len(probs) or not len(gold):
        raise ValueError("top_k_accuracy needs one probability row per gold label, and at least one")
    index = {label: i for i, label in enumerate(labels)}
    best = np.argsort(-probs, axis=1)[:, :k]
    return float(np.mean([index.get(g, -1) in row for g, row in zip(gold, best)]))


def entity_metrics(gold: Sequence[Sequence[tuple]], predicted: Sequence[Sequence[tuple]]) -> dict:
    """Entity-level micro precision/recall/F1 over exact spans, as seqeval computes them.

    Each item is a list of ``(type, start, end)``; a predicted entity counts only when its
    type and both boundaries match a gold one. Per-type detail sits under ``per_type``.
    """
    if len(gold) != len(predicted):
        raise ValueError(f"gold has {len(gold)} items but predicted has {len(predicted)}")
    if not gold:
        raise ValueError("cannot compute metrics on an empty evaluation set")
    counts: dict[str, list[int]] = {}  # type -> [true positives, predicted, gold]
    for gold_spans, predicted_spans in zip(gold, predicted):
        gold_set, predicted_set = set(map(tuple, gold_spans)), set(map(tuple, predicted_spans))
        for span in gold_set | predicted_set:
            row = counts.setdefault(span[0], [0, 0, 0])
            row[0] += span in gold_set and span in predicted_set
            row[1] += span in predicted_set
            row[2] += span in gold_set

    def prf(tp: int, n_predicted: int, n_gold: int) -> tuple[float, float, float]:
        precision = tp / n_predicted if n_predicted else 0.0
        recall = tp / n_gold if n_gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return precision, recall, f1

    total = [sum(row[i] for row in counts.values()) for i in range(3)]
    precision, recall, f1 = prf(*total)
    return {
        "f1": f1,
        "precision": precision,
        "recall": recall,
        "n": len(gold),
        "entities": {"gold": total[2], "predicted": total[1], "correct": total[0]},
        "per_type": {
            kind: dict(zip(("precision", "recall", "f1"), prf(*row)), support=row[2])
            for kind, row in sorted(counts.items())
        },
    }
