"""MicroBatcher: what arrives while a batch runs forms the next batch; bounds, errors, departures."""

from __future__ import annotations

import asyncio
import threading

import pytest

from shared.rest_batching import MicroBatcher, Overloaded


class GatedModel:
    """Doubles each item; the first call blocks until ``release`` so requests can queue behind it."""

    def __init__(self, fail_on: object = None) -> None:
        self.batches: list[list] = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.fail_on = fail_on

    def __call__(self, items: list) -> list:
        if not self.entered.is_set():
            self.entered.set()
            self.gate.wait(10)
        self.batches.append(list(items))
        if self.fail_on in items:
            raise ValueError(f"cannot process {self.fail_on}")
        return [2 * x for x in items]


async def running(model: GatedModel) -> None:
    """Until the first batch is inside the model."""
    assert await asyncio.to_thread(model.entered.wait, 10)


async def first_batch_running(batcher: MicroBatcher, model: GatedModel) -> asyncio.Future:
    """Submit ``[1]`` and wait until it is inside the model, so later requests queue behind it."""
    first = asyncio.ensure_future(batcher.submit([1]))
    await running(model)
    return first


async def queued(batcher: MicroBatcher, n: int) -> None:
    """Yield to the event loop until ``n`` requests wait behind the running batch."""
    while len(batcher._queue) < n:
        await asyncio.sleep(0)


def test_requests_that_arrive_during_a_batch_run_together_in_order_and_are_never_split():
    model = GatedModel()
    batcher = MicroBatcher(model, max_batch_size=4, max_queue_ms=60_000)

    async def scenario():
        first = await first_batch_running(batcher, model)
        others = [asyncio.ensure_future(batcher.submit(items)) for items in ([2, 3], [4], [5, 6], [7])]
        await queued(batcher, 4)
        model.gate.set()
        return await first, await asyncio.gather(*others)

    first, others = asyncio.run(scenario())
    batcher.close()
    assert first == [2]
    assert others == [[4, 6], [8], [10, 12], [14]]
    # The first request ran alone; the 4 queued behind it filled batches of at most 4 items
    # without splitting a request: [2, 3] + [4], then [5, 6] + [7].
    assert model.batches == [[1], [2, 3, 4], [5, 6, 7]]
    assert (batcher.batches, batcher.items) == (3, 7)


def test_a_request_that_waited_past_the_bound_is_refused_and_the_rest_are_served():
    now = [0.0]
    model = GatedModel()
    batcher = MicroBatcher(model, max_batch_size=8, max_queue_ms=100, clock=lambda: now[0])

    async def scenario():
        first = await first_batch_running(batcher, model)
        late = asyncio.ensure_future(batcher.submit([2]))
        await queued(batcher, 1)
        now[0] = 0.5  # the queued request has now waited 500 ms
        on_time = asyncio.ensure_future(batcher.submit([3]))
        await queued(batcher, 2)
        model.gate.set()
        return await asyncio.gather(first, late, on_time, return_exceptions=True)

    first, late, on_time = asyncio.run(scenario())
    batcher.close()
    assert first == [2] and on_time == [6]
    assert isinstance(late, Overloaded) and "waited 500 ms" in str(late)
    assert batcher.refused == 1
    assert [2] not in model.batches


def test_a_failing_batch_fails_its_requests_only_and_the_batcher_goes_on():
    model = GatedModel(fail_on=13)
    batcher = MicroBatcher(model, max_batch_size=8, max_queue_ms=60_000)

    async def scenario():
        first = await first_batch_running(batcher, model)
        bad = [asyncio.ensure_future(batcher.submit(items)) for items in ([13], [2])]
        await queued(batcher, 2)
        model.gate.set()
        results = await asyncio.gather(first, *bad, return_exceptions=True)
        return results, await batcher.submit([5])

    (first, bad, neighbour), after = asyncio.run(scenario())
    batcher.close()
    assert first == [2]
    assert isinstance(bad, ValueError) and isinstance(neighbour, ValueError)  # same batch, same error
    assert after == [10]


def test_a_request_whose_client_left_is_not_computed():
    model = GatedModel()
    batcher = MicroBatcher(model, max_batch_size=8, max_queue_ms=60_000)

    async def scenario():
        first = await first_batch_running(batcher, model)
        gone = asyncio.ensure_future(batcher.submit([2]))
        stays = asyncio.ensure_future(batcher.submit([3]))
        await queued(batcher, 2)
        gone.cancel()
        await asyncio.sleep(0)
        model.gate.set()
        return await first, await stays

    assert asyncio.run(scenario()) == ([2], [6])
    batcher.close()
    assert model.batches == [[1], [3]]


def test_close_from_another_thread_stops_the_worker():
    model = GatedModel()
    model.gate.set()
    batcher = MicroBatcher(model, max_batch_size=8, max_queue_ms=60_000)

    async def scenario():
        assert await batcher.submit([4]) == [8]
        await asyncio.get_running_loop().run_in_executor(None, batcher.close)
        with pytest.raises(asyncio.CancelledError):
            await batcher._worker

    asyncio.run(scenario())
