"""Which queued items run together: ordered by token length, cut within a padded-token budget, oldest first.

A run pads every row to its longest, so a run of mixed lengths computes mostly padding: on 2 cores
sentiment runs 131 items/s in arrival-order batches of 32 and 291 in length-sorted runs of 32.
Like TEI (a batch closes on ``max_batch_tokens``) and Infinity (queued items sorted by length
before batches are cut), the planner looks at everything queued, orders it by tokens and cuts a
run of neighbours in that order whose padded size (rows x the longest row) fits the budget.

The run is always the one that holds the oldest item, so nothing waits behind a stream of
newer ones; among the runs that hold it, the one with the most rows (the least padding on a
tie). The REST batcher plans one run at a time as the model frees (:mod:`shared.rest_batching`);
a whole batch (the Kafka loop's, through ``TaskProcessor.process``) is cut by the same rule
(:func:`plan_runs`).

An item is its token width and its rows: one row for a classifier's text, one per window for
an entity text longer than the model's window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["RunBudget", "length_runs", "next_run", "plan_runs"]


@dataclass(frozen=True)
class RunBudget:
    """The most one ONNX Runtime run holds.

    Args:
        max_items (`int`): rows (texts, or entity windows).
        max_tokens (`int | None`): padded tokens, rows x the longest row's tokens; ``None``: no bound.
    """

    max_items: int
    max_tokens: int | None = None

    def rows_at(self, width: int) -> int:
        """The most rows a run whose longest row has ``width`` tokens may hold (at least 1: a long item runs alone)."""
        if self.max_tokens is None:
            return self.max_items
        return max(1, min(self.max_items, self.max_tokens // max(width, 1)))


def next_run(widths: Sequence[int], oldest: int, budget: RunBudget, rows: Sequence[int] | None = None) -> list[int]:
    """Indices into ``widths`` of the next run: neighbours in token order around ``oldest``, within ``budget``.

    Args:
        widths (`Sequence[int]`): each queued item's tokens (its longest row's).
        oldest (`int`): the index of the item that must run now.
        budget (`RunBudget`): rows and padded tokens of one run.
        rows (`Sequence[int] | None`): each item's rows; ``None``: one each.

    Returns:
        The run's indices, shortest first. An item over the budget on its own runs alone.
    """
    rows = rows if rows is not None else [1] * len(widths)
    order = sorted(range(len(widths)), key=lambda i: (widths[i], i))
    at = order.index(oldest)
    best, best_key = (at, at), None
    # Widening to the left (shorter items) never raises the padded width; to the right it does. For
    # each right end, the left end is as far left as the budget allows: two pointers, linear.
    lo = 0
    held = sum(rows[order[k]] for k in range(0, at + 1))
    real = sum(rows[order[k]] * widths[order[k]] for k in range(0, at + 1))
    for hi in range(at, len(order)):
        if hi > at:
            held += rows[order[hi]]
            real += rows[order[hi]] * widths[order[hi]]
        cap = budget.rows_at(widths[order[hi]])
        while held > cap and lo < at:
            held -= rows[order[lo]]
            real -= rows[order[lo]] * widths[order[lo]]
            lo += 1
        if held > cap and hi > at:
            break  # the oldest and what lies between it and ``hi`` no longer fit: wider ends fit less
        # Most rows; on a tie, the least padding (padded minus real tokens): a short item left out
        # packs well with the next short ones, a long one left out would pad them.
        key = (held, real - held * widths[order[hi]])
        if best_key is None or key > best_key:
            best, best_key = (lo, hi), key
        if held > cap:  # the oldest alone is over the budget: it runs alone
            break
    return [order[k] for k in range(best[0], best[1] + 1)]


def plan_runs(widths: Sequence[int], budget: RunBudget, rows: Sequence[int] | None = None) -> list[list[int]]:
    """A whole batch cut into runs by :func:`next_run`, the earliest item (lowest index) first each time."""
    rows = rows if rows is not None else [1] * len(widths)
    left = list(range(len(widths)))
    runs = []
    while left:
        picked = next_run([widths[i] for i in left], 0, budget, [rows[i] for i in left])
        runs.append([left[k] for k in picked])
        taken = set(picked)
        left = [i for k, i in enumerate(left) if k not in taken]
    return runs


def length_runs(lengths: Sequence[int], max_items: int, max_tokens: int | None) -> list[np.ndarray]:
    """Indices sorted by token count, cut greedily from the shortest into runs that pad little.

    The runtime's own cut of what it is handed at once (a text classifier's batch, an entity
    batch's windows): each run holds inputs of similar length, at most ``max_items`` of them and
    at most ``max_tokens`` padded tokens (``None``: no token bound). Helpdesk tickets run from
    10 to 256 tokens; fixed runs of 16 padded most of them 3x and more. An input longer than
    the bound runs alone. A run the planner cut within the same bounds comes back as one run.
    """
    order = np.argsort(lengths, kind="stable")
    runs, start = [], 0
    while start < len(order):
        end = start + 1
        while end < len(order) and end - start < max_items and (
                max_tokens is None or (end - start + 1) * lengths[order[end]] <= max_tokens):
            end += 1
        runs.append(order[start:end])
        start = end
    return runs
