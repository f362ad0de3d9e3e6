"""How a classifier batch is cut into ONNX Runtime runs: by token count, within both bounds."""

from __future__ import annotations

import numpy as np
import pytest

from shared.runtime import OnnxTextClassifier


def runs(lengths: list[int], max_batch_size: int, max_batch_tokens: int | None) -> list[list[int]]:
    model = object.__new__(OnnxTextClassifier)  # the cutting needs no model
    model.max_batch_size, model.max_batch_tokens = max_batch_size, max_batch_tokens
    return [chunk.tolist() for chunk in model._chunks(lengths)]


def test_runs_hold_similar_lengths_within_the_item_and_token_bounds():
    lengths = [5, 50, 6, 7, 100, 8]
    # Sorted: 5, 6, 7 | 8 (with 50 it would pad to 2 x 50 > 64) | 50 | 100 (alone, over the bound: it still runs)
    assert runs(lengths, max_batch_size=3, max_batch_tokens=64) == [[0, 2, 3], [5], [1], [4]]


def test_without_a_token_bound_runs_are_fixed_size_in_length_order():
    assert runs([9, 1, 8, 2, 7], max_batch_size=2, max_batch_tokens=None) == [[1, 3], [4, 2], [0]]


@pytest.mark.parametrize("n", [1, 17, 200])
def test_every_item_is_in_exactly_one_run(n):
    lengths = list(np.random.default_rng(n).integers(3, 256, size=n))
    cut = runs(lengths, max_batch_size=64, max_batch_tokens=512)
    assert sorted(i for chunk in cut for i in chunk) == list(range(n))
    assert all(len(chunk) == 1 or len(chunk) * max(lengths[i] for i in chunk) <= 512 for chunk in cut)
