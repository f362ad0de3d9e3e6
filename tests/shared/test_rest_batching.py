"""MicroBatcher: items tokenized while the model runs, runs planned by tokens across requests, oldest first;
the queue bound, errors, departures, answers from the cache, the Kafka loop's items in the same runs."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import CancelledError
from dataclasses import dataclass

import pytest

from shared.rest_batching import MicroBatcher, Overloaded
from shared.run_planner import RunBudget

WAIT = 10  # seconds before a test gives up waiting on a thread (never reached when it passes)


@dataclass
class Item:
    """A prepared item: ``value`` stands for a text of ``value`` tokens."""

    value: int
    width: int
    rows: int = 1
    result: object = None


class GatedModel:
    """``prepare`` gives each value its own width; ``run`` doubles. The first run waits for ``gate``."""

    def __init__(self, cached: tuple = (), fail_on: object = None) -> None:
        self.prepared: list[list] = []
        self.runs: list[list] = []
        self.tags: list[list] = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.cached, self.fail_on = cached, fail_on

    def prepare(self, values: list) -> list[Item]:
        self.prepared.append(list(values))
        return [Item(v, width=v, result=("cached", v) if v in self.cached else None) for v in values]

    def run(self, items: list[Item], tags: list) -> list:
        if not self.entered.is_set():
            self.entered.set()
            self.gate.wait(WAIT)
        values = [item.value for item in items]
        self.runs.append(values)
        self.tags.append(list(tags))
        if self.fail_on in values:
            raise ValueError(f"cannot process {self.fail_on}")
        return [2 * v for v in values]


def batcher_for(model: GatedModel, budget: RunBudget = RunBudget(64, None), **options) -> MicroBatcher:
    return MicroBatcher(model.prepare, model.run, budget, max_queue_ms=options.pop("max_queue_ms", 60_000), **options)


def first_run_blocked(batcher: MicroBatcher, model: GatedModel):
    """Submit ``[1]`` and wait until its run is inside the model, so later requests queue behind it."""
    first = batcher.submit_nowait([1])
    assert model.entered.wait(WAIT)
    return first


def tokenized_and_waiting(batcher: MicroBatcher, n: int) -> None:
    """Until ``n`` items are tokenized and wait for the model (a condition wait, no sleeping)."""
    with batcher._lock:
        assert batcher._readied.wait_for(lambda: len(batcher._ready) >= n, WAIT)


def test_items_queued_across_requests_run_by_token_length_and_requests_complete_across_runs():
    model = GatedModel()
    batcher = batcher_for(model, RunBudget(max_items=4, max_tokens=100))
    first = first_run_blocked(batcher, model)
    requests = [batcher.submit_nowait(values) for values in ([50, 5], [6], [48, 7], [8])]
    tokenized_and_waiting(batcher, 6)
    # Tokenized while the model was still busy with the first run: the stages overlap.
    assert model.runs == [] and model.prepared[0] == [1] and sum(map(len, model.prepared[1:])) == 6
    model.gate.set()
    assert first.result(WAIT) == [2]
    assert [r.result(WAIT) for r in requests] == [[100, 10], [12], [96, 14], [16]]
    batcher.close()
    # The oldest item (50) runs first, with its neighbour by length (2 x 50 tokens fill the budget);
    # the four short ones share the next run. The first request was answered across both runs.
    assert model.runs == [[1], [48, 50], [5, 6, 7, 8]]
    assert (batcher.runs, batcher.items) == (3, 7)


def test_the_oldest_item_runs_next_even_when_newer_ones_would_pack_better():
    model = GatedModel()
    batcher = batcher_for(model, RunBudget(max_items=2))
    first_run_blocked(batcher, model)
    long_one = batcher.submit_nowait([90])
    shorts = [batcher.submit_nowait([v]) for v in (1, 2, 3)]
    tokenized_and_waiting(batcher, 4)
    model.gate.set()
    assert long_one.result(WAIT) == [180] and [s.result(WAIT) for s in shorts] == [[2], [4], [6]]
    batcher.close()
    assert model.runs[1] == [3, 90]  # its nearest neighbour by length joins it
    assert model.runs[2:] == [[1, 2]]


def test_a_request_that_waited_past_the_bound_is_refused_and_the_rest_and_unbounded_ones_are_served():
    now = [0.0]
    model = GatedModel()
    batcher = batcher_for(model, max_queue_ms=100, clock=lambda: now[0])
    first = first_run_blocked(batcher, model)
    late = batcher.submit_nowait([2])
    kafka = batcher.submit_nowait([4], bounded=False)  # a Kafka record waits its turn instead
    tokenized_and_waiting(batcher, 2)
    now[0] = 0.5  # the queued requests have now waited 500 ms
    on_time = batcher.submit_nowait([3])
    tokenized_and_waiting(batcher, 3)
    model.gate.set()
    assert first.result(WAIT) == [2] and on_time.result(WAIT) == [6] and kafka.result(WAIT) == [8]
    with pytest.raises(Overloaded, match="waited 500 ms"):
        late.result(WAIT)
    batcher.close()
    assert batcher.refused == 1
    assert model.runs == [[1], [3, 4]]


def test_a_failing_run_fails_its_requests_only_and_the_batcher_goes_on():
    model = GatedModel(fail_on=13)
    batcher = batcher_for(model)
    first = first_run_blocked(batcher, model)
    bad, neighbour = batcher.submit_nowait([13]), batcher.submit_nowait([2])
    tokenized_and_waiting(batcher, 2)
    model.gate.set()
    assert first.result(WAIT) == [2]
    for same_run in (bad, neighbour):
        with pytest.raises(ValueError, match="cannot process 13"):
            same_run.result(WAIT)
    assert batcher.submit_nowait([5]).result(WAIT) == [10]
    batcher.close()


def test_a_request_whose_caller_left_is_not_computed():
    model = GatedModel()
    batcher = batcher_for(model)
    first = first_run_blocked(batcher, model)
    gone, stays = batcher.submit_nowait([2]), batcher.submit_nowait([3])
    tokenized_and_waiting(batcher, 2)
    assert gone.cancel()  # what asyncio does to it when the client's task is cancelled
    model.gate.set()
    assert first.result(WAIT) == [2] and stays.result(WAIT) == [6]
    with pytest.raises(CancelledError):
        gone.result(WAIT)
    batcher.close()
    assert model.runs == [[1], [3]]


def test_items_the_cache_answered_never_reach_the_model():
    model = GatedModel(cached=(7,))
    model.gate.set()
    batcher = batcher_for(model)
    assert batcher.submit_nowait([7, 3]).result(WAIT) == [("cached", 7), 6]
    batcher.close()
    assert model.runs == [[3]]


def test_rest_and_kafka_items_share_runs_with_their_tags():
    model = GatedModel()
    batcher = batcher_for(model)

    async def scenario():
        first = first_run_blocked(batcher, model)
        rest = asyncio.ensure_future(batcher.submit([4], tag="rest"))
        kafka = await asyncio.to_thread(batcher.submit_nowait, [5, 6])  # the loop's thread, no tag
        await asyncio.to_thread(tokenized_and_waiting, batcher, 3)
        model.gate.set()
        return first.result(WAIT), await rest, await asyncio.wrap_future(kafka)

    assert asyncio.run(scenario()) == ([2], [8], [10, 12])
    batcher.close()
    assert sorted(model.runs[1]) == [4, 5, 6]
    assert sorted(model.tags[1], key=str) == [None, None, "rest"]


def test_close_fails_what_is_queued_and_refuses_more():
    model = GatedModel()
    batcher = batcher_for(model)
    first = first_run_blocked(batcher, model)
    queued = batcher.submit_nowait([2])
    tokenized_and_waiting(batcher, 1)
    closing = threading.Thread(target=batcher.close)
    closing.start()
    model.gate.set()  # the run in hand finishes
    closing.join(WAIT)
    assert first.result(WAIT) == [2]
    with pytest.raises(RuntimeError, match="shutting down"):
        queued.result(WAIT)
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit_nowait([3])
    assert not any(thread.is_alive() for thread in batcher._threads)
