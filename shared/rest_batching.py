"""Micro-batching of REST requests for one CPU model: run what is queued as soon as the model is free.

BentoML's adaptive batching (the cork dispatcher) waits for a batch to fill for about as long
as recent requests waited in its queue. Under load that wait grows with the queue, and it
stays after the load has gone: on 2 cores, after a burst at concurrency 32 single requests
took 100 ms instead of 10 (measured with a raw socket client). Its controller also wakes
every millisecond while a batch runs.

On a CPU serving one model there is nothing to gain by waiting: the model runs one batch at
a time, and while it runs the next requests queue up by themselves. So each batch is what
arrived while the previous one ran (up to ``max_batch_size`` items): one item at low load,
large batches under load, and no timer. ``max_wait_ms`` adds a fixed wait for a first
request at low load, for models whose batch of 2 costs about what a batch of 1 does (a GPU).

A request that waited longer than ``max_queue_ms`` before its turn is refused with
:class:`Overloaded` (HTTP 503): the client can retry elsewhere instead of waiting on a queue
that is not draining.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

__all__ = ["MicroBatcher", "Overloaded"]

logger = logging.getLogger(__name__)


class Overloaded(RuntimeError):
    """The request waited longer than the queue bound; nothing was computed for it."""


@dataclass
class _Pending:
    items: Sequence[Any]
    future: asyncio.Future
    queued_at: float


class MicroBatcher:
    """Merge concurrent requests into batches for ``process``, run one batch at a time in a thread.

    Args:
        process (`Callable[[list], list]`): items to results, one result per item, in order.
        max_batch_size (`int`): most items in one call of ``process``. A request is never split,
            so a batch holds at least one whole request.
        max_queue_ms (`float`): a request that waited longer than this is refused (``Overloaded``).
        max_wait_ms (`float`, defaults to `0`): how long a batch may wait for more requests once the
            model is free; 0 runs it at once.
        clock (`Callable[[], float]`, defaults to `time.monotonic`): seconds, for the queue bound.
    """

    def __init__(self, process: Callable[[list], list], max_batch_size: int, max_queue_ms: float,
                 max_wait_ms: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.process = process
        self.clock = clock
        self.max_batch_size = max_batch_size
        self.max_queue_s = max_queue_ms / 1000
        self.max_wait_s = max_wait_ms / 1000
        self.batches = 0
        self.items = 0
        self.refused = 0
        self._queue: deque[_Pending] = deque()
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")

    async def submit(self, items: Sequence[Any]) -> list:
        """The results for ``items``, computed in a batch with whatever else is queued."""
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done():
            self._wake = asyncio.Event()
            self._worker = loop.create_task(self._run(), name="micro-batcher")
        pending = _Pending(items, loop.create_future(), self.clock())
        self._queue.append(pending)
        self._wake.set()
        return await pending.future

    def _take_batch(self) -> list[_Pending]:
        batch: list[_Pending] = []
        size = 0
        now = self.clock()
        while self._queue:
            head = self._queue[0]
            if head.future.done():  # the client went away
                self._queue.popleft()
                continue
            if now - head.queued_at > self.max_queue_s:
                self._queue.popleft()
                self.refused += 1
                head.future.set_exception(Overloaded(
                    f"request waited {1000 * (now - head.queued_at):.0f} ms in the queue "
                    f"(bound {1000 * self.max_queue_s:.0f} ms); retry later"))
                continue
            if batch and size + len(head.items) > self.max_batch_size:
                break
            batch.append(self._queue.popleft())
            size += len(head.items)
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self.max_wait_s and self._queue:
                await asyncio.sleep(self.max_wait_s)
            while batch := self._take_batch():
                items = [item for pending in batch for item in pending.items]
                try:
                    results = await loop.run_in_executor(self._executor, self.process, items)
                except Exception as exc:  # the requests get the error; the batcher goes on
                    logger.exception("batch of %d items failed", len(items))
                    for pending in batch:
                        if not pending.future.done():
                            pending.future.set_exception(exc)
                    continue
                self.batches += 1
                self.items += len(items)
                start = 0
                for pending in batch:
                    end = start + len(pending.items)
                    if not pending.future.done():
                        pending.future.set_result(results[start:end])
                    start = end

    def close(self) -> None:
        """Stop the worker (from any thread) after the batch in hand."""
        if self._worker is not None and not self._worker.done():
            try:
                self._worker.get_loop().call_soon_threadsafe(self._worker.cancel)
            except RuntimeError:  # the loop is already closed
                pass
        self._executor.shutdown(wait=True, cancel_futures=True)
