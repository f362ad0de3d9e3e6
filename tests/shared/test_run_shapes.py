"""Answers do not depend on the run an item lands in: alone, in a short run, in a long padded run.

The shipped static-int8 models, as the service loads them (runs of up to 64 items and 512 padded tokens).

- entities: every span and score is bit-identical whatever the run.
- sentiment: labels are identical and scores agree within ``SCORE_TOLERANCE``. Padding changes
  nothing (an item padded alone to the model's 96 tokens gives the same bits); the row count
  does, in the last bits: the graph keeps some fp32 matrix products (one feed-forward output
  and the classifier's Gemm), and ONNX Runtime's MLAS picks its fp32 kernel, and with it the
  order of the sums, by matrix shape. Measured over 300 test texts in runs of 2 to 64: logits
  differ by at most 9.5e-7 (2 float32 ulps at their magnitude, under 4.7), and probabilities
  in this test by at most 2.3e-8.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines.labelled_rows import load_rows
from shared.processors import Received
from shared.schemas import TaskRequestV1
from shared.settings import REPO_ROOT
from shared.task_kinds import load_processor

# A softmax moves each probability by at most half the summed change of the logits: 2 x 9.5e-7 / 2 < 1e-6.
SCORE_TOLERANCE = 1e-6
MODELS = Path(REPO_ROOT) / "models"


def _processor(task: str):
    return load_processor(task, MODELS / task, intra_op_threads=1, max_batch_size=64, max_batch_tokens=512)


def _prepared(processor, task: str, n: int = 40):
    rows, _, _ = load_rows(task, None)
    by_length = sorted(rows[:400], key=lambda r: len(r["text"]))
    picked = [by_length[k] for k in np.linspace(0, len(by_length) - 1, n).astype(int)]  # short to long
    return processor.prepare([Received.now(TaskRequestV1(id=str(k), **row)) for k, row in enumerate(picked)])


def _shapes(prepared, k: int) -> dict[str, list]:
    """Runs holding item ``k``: alone, with 3 neighbours, with 31 others padded to the longest (k first)."""
    others = [p for j, p in enumerate(prepared) if j != k]
    return {"alone": [prepared[k]], "short": [prepared[k], *others[k % 10:k % 10 + 3]],
            "long padded": [prepared[k], *others[-31:]]}


@pytest.fixture(scope="module")
def entities():
    processor = _processor("entities")
    return processor, _prepared(processor, "entities")


@pytest.fixture(scope="module")
def sentiment():
    processor = _processor("sentiment")
    return processor, _prepared(processor, "sentiment")


def _spans(result) -> list[tuple]:
    return [(e.type, e.start, e.end, e.text, e.score) for e in result.entities]


def test_entity_spans_and_scores_are_identical_in_any_run(entities):
    processor, prepared = entities
    assert sum(p.rows for p in prepared) > len(prepared) - 1  # every text has its window(s)
    found = 0
    for k in range(0, len(prepared), 3):
        runs = _shapes(prepared, k)
        assert max(p.width for p in runs["long padded"]) > prepared[k].width or k > 30  # really padded
        answers = {shape: _spans(processor.run(run)[0]) for shape, run in runs.items()}
        assert answers["short"] == answers["alone"] and answers["long padded"] == answers["alone"], k
        found += len(answers["alone"])
    assert found > 5  # the texts have entities to compare
    # The planner's own runs (process) give the same answers as each item alone.
    planned = processor.process([p.item for p in prepared])
    assert [_spans(r) for r in planned] == [_spans(processor.run([p])[0]) for p in prepared]


def test_sentiment_labels_are_identical_and_scores_agree_to_the_last_bits_in_any_run(sentiment):
    processor, prepared = sentiment
    worst = 0.0
    for k in range(0, len(prepared), 3):
        answers = {shape: processor.run(run)[0] for shape, run in _shapes(prepared, k).items()}
        alone = answers["alone"]
        for shape, answer in answers.items():
            assert answer.label == alone.label, (k, shape)
            worst = max(worst, *(abs(answer.scores[c] - alone.scores[c]) for c in alone.scores))
    assert worst <= SCORE_TOLERANCE
    planned = processor.process([p.item for p in prepared])
    singles = [processor.run([p])[0] for p in prepared]
    assert [r.label for r in planned] == [r.label for r in singles]
    assert max(abs(r.scores[c] - s.scores[c]) for r, s in zip(planned, singles) for c in s.scores) <= SCORE_TOLERANCE


def test_sentiment_padding_alone_changes_no_bit(sentiment):
    processor, prepared = sentiment
    model = processor.model
    for p in prepared[::4]:
        feeds = model.feeds_of([p.encoded])
        (tight,) = model.session.run(["logits"], feeds)
        wide = {name: np.pad(a, ((0, 0), (0, model.info.max_length - a.shape[1]))) for name, a in feeds.items()}
        (padded,) = model.session.run(["logits"], wide)
        assert np.array_equal(tight, padded)
