"""Classification metrics: accuracy, macro-F1, per-class precision/recall/F1, confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["classification_metrics", "agreement"]


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
