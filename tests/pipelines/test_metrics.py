import pytest

from pipelines.classification import pick_review_threshold
from pipelines.common.metrics import agreement, classification_metrics

import numpy as np


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
