import numpy as np
import pytest

from pipelines.common.metrics import agreement, classification_metrics, entity_metrics, top_k_accuracy
from pipelines.common.model_output import pick_review_threshold


def test_metrics_match_hand_computed_values():
    gold = ["a", "a", "b", "b", "c"]
    pred = ["a", "b", "b", "b", "a"]
    m = classification_metrics(gold, pred, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(3 / 5)
    # a: p=1/2 r=1/2 f=1/2; b: p=2/3 r=1 f=0.8; c: p=0 r=0 f=0
    assert m["per_label"]["b"]["f1"] == pytest.approx(0.8)
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 0) / 3)
    assert m["confusion_matrix"]["matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_agreement_and_empty_inputs():
    assert agreement(["a", "b"], ["a", "c"]) == 0.5
    with pytest.raises(ValueError):
        classification_metrics([], [], ["a"])


def test_review_threshold_is_the_lowest_that_reaches_the_target_precision():
    scores = np.array([0.55, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99] * 5)
    correct = np.array([False, False, True, True, True, True, True, True] * 5)
    assert pick_review_threshold(scores, correct) == 0.61


def test_entity_metrics_count_exact_spans_only():
    gold = [[("PER", 0, 2), ("ORG", 5, 6)], [("LOC", 1, 2)]]
    predicted = [[("PER", 0, 2), ("ORG", 4, 6)], [("LOC", 1, 2), ("PER", 3, 4)]]
    metrics = entity_metrics(gold, predicted)
    # 2 of 4 predictions right, 2 of 3 gold found.
    assert metrics["precision"] == pytest.approx(0.5)
    assert metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert metrics["per_type"]["ORG"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert metrics["per_type"]["PER"]["support"] == 1 and metrics["per_type"]["PER"]["precision"] == 0.5


def test_top_k_accuracy_counts_gold_among_the_k_best():
    probs = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
    labels = ["a", "b", "c"]
    assert top_k_accuracy(["b", "a", "c"], probs, labels, k=1) == 0.0
    assert top_k_accuracy(["b", "a", "c"], probs, labels, k=2) == pytest.approx(1 / 3)
    assert top_k_accuracy(["b", "a", "unseen"], probs, labels, k=3) == pytest.approx(2 / 3)
