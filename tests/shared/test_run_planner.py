"""The run planner: neighbours by token length around the oldest item, within the padded-token budget."""

from __future__ import annotations

import numpy as np
import pytest

from shared.run_planner import RunBudget, next_run, plan_runs


def padded(run: list[int], widths: list[int], rows: list[int] | None = None) -> int:
    rows = rows or [1] * len(widths)
    return sum(rows[i] for i in run) * max(widths[i] for i in run)


def test_the_run_holds_the_oldest_and_its_nearest_lengths_within_the_budget():
    widths = [40, 5, 38, 6, 41, 90, 7]
    run = next_run(widths, oldest=0, budget=RunBudget(max_items=8, max_tokens=128))
    # 3 rows of up to 42 tokens fit 128: the oldest (40) with 38 and 41, not the short ones that would pad to 40.
    assert sorted(widths[i] for i in run) == [38, 40, 41]
    assert 0 in run and padded(run, widths) <= 128


def test_the_run_prefers_more_rows_and_then_less_padding():
    widths = [10, 10, 10, 10, 30]
    # Around the 30-token item only 2 rows fit 64 tokens; around the oldest 10 all four 10s fit (40 tokens).
    assert sorted(next_run(widths, 0, RunBudget(8, 64))) == [0, 1, 2, 3]
    assert sorted(next_run(widths, 4, RunBudget(8, 64))) == [3, 4]


def test_an_item_over_the_budget_runs_alone_and_the_item_bound_holds_without_a_token_bound():
    assert next_run([5, 500, 6], 1, RunBudget(8, 128)) == [1]
    assert len(next_run([3] * 20, 7, RunBudget(4))) == 4


def test_windows_count_as_rows():
    # An entity text of 3 windows takes 3 of the 4 rows: only one more text joins it.
    widths, rows = [20, 20, 21, 22], [3, 1, 1, 1]
    run = next_run(widths, 0, RunBudget(max_items=4, max_tokens=1000), rows)
    assert 0 in run and sum(rows[i] for i in run) == 4


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_item_runs_once_in_plan_order_and_every_run_fits(seed):
    rng = np.random.default_rng(seed)
    widths = [int(w) for w in rng.integers(3, 130, size=150)]
    rows = [int(r) for r in rng.integers(1, 3, size=150)]
    budget = RunBudget(max_items=16, max_tokens=512)
    runs = plan_runs(widths, budget, rows)
    assert sorted(i for run in runs for i in run) == list(range(150))
    assert all(len(run) == 1 or padded(run, widths, rows) <= 512 for run in runs)
    assert all(len(run) == 1 or sum(rows[i] for i in run) <= 16 for run in runs)
    # Each run holds the earliest item not run before it: nothing waits behind later items.
    done: set[int] = set()
    for run in runs:
        assert min(set(range(150)) - done) in run
        done |= set(run)


def test_sorted_runs_pad_less_than_arrival_order():
    rng = np.random.default_rng(0)
    widths = [int(w) for w in rng.integers(8, 96, size=256)]
    runs = plan_runs(widths, RunBudget(32, 1024))
    fifo = [list(range(k, min(k + 32, 256))) for k in range(0, 256, 32)]
    assert sum(padded(r, widths) for r in runs) < 0.8 * sum(padded(r, widths) for r in fifo)
