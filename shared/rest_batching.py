"""Batching across requests by tokens for one CPU model: a tokenizer thread, a model thread, a planner between.

Three stages, as in Infinity's batch handler, so the model never waits for tokenization:

1. :meth:`MicroBatcher.submit` (the event loop) or :meth:`MicroBatcher.submit_nowait` (any thread)
   puts a request on the intake and returns its future.
2. The tokenizer thread takes everything on the intake and prepares it in one call (the model
   text, the response cache, the tokenizer: ``prepare``). The Rust tokenizer releases the GIL, as
   ONNX Runtime does, so the next requests are encoded while the model runs the current ones.
   Items the cache answers are done here; the rest join the ready list, tokenized once.
3. The model thread, each time it is free, plans the next run over everything ready
   (:func:`shared.run_planner.next_run`: the oldest item's run, neighbours by token length within
   the padded-token budget) and runs it. A request with several items may be answered across
   runs; it completes when all its items have results, in order.

There is no timer. BentoML's adaptive batching (the cork dispatcher) waits for a batch to fill
for about as long as recent requests waited in its queue: after a burst at concurrency 32,
single requests took 100 ms instead of 10 (2 cores), and its controller wakes every millisecond.
On a CPU serving one model nothing is gained by waiting: while a run runs, the next items queue
up by themselves. ``max_wait_ms`` adds a fixed wait for a first item at low load, for models
whose run of 2 costs about what a run of 1 does (a GPU).

A request that waited longer than ``max_queue_ms`` before its items ran is refused with
:class:`Overloaded` (HTTP 503): the client can retry elsewhere instead of waiting on a queue that
is not draining. The oldest item is in every next run, so an item waits only behind the runs
ahead of it, never behind newer ones.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from typing import Any

from shared.run_planner import RunBudget, next_run

__all__ = ["MicroBatcher", "Overloaded"]

logger = logging.getLogger(__name__)


class Overloaded(RuntimeError):
    """The request waited longer than the queue bound; its answer was not completed."""


class _Request:
    """One caller's items, their results as they come, and the future that completes with all of them."""

    __slots__ = ("items", "tag", "queued_at", "bounded", "future", "results", "missing")

    def __init__(self, items: list, tag: Any, queued_at: float, bounded: bool) -> None:
        self.items, self.tag, self.queued_at, self.bounded = items, tag, queued_at, bounded
        self.future: Future = Future()
        self.results: list = [None] * len(items)
        self.missing = len(items)

    def fill(self, index: int, result: Any) -> None:
        self.results[index] = result
        self.missing -= 1
        if self.missing == 0:
            self._settle(lambda: self.future.set_result(self.results))

    def fail(self, error: BaseException) -> bool:
        """Fail the request unless it is already settled; whether this call failed it."""
        return self._settle(lambda: self.future.set_exception(error))

    def _settle(self, settle: Callable[[], None]) -> bool:
        try:  # the caller may have cancelled meanwhile (a client that went away), from its own thread
            settle()
        except InvalidStateError:
            return False
        return True


class _Ready:
    """One tokenized item waiting for the model."""

    __slots__ = ("request", "index", "prepared")

    def __init__(self, request: _Request, index: int, prepared: Any) -> None:
        self.request, self.index, self.prepared = request, index, prepared


class MicroBatcher:
    """Requests' items, tokenized as they arrive, run in runs planned by token length across requests.

    Args:
        prepare (`Callable[[list], list]`): items to prepared items, in order, each with ``result``
            (set when answered without the model), ``width`` and ``rows`` (what runs are cut by);
            ``StagedProcessor.prepare``.
        run (`Callable[[list, list], list]`): one run of prepared items and their requests' tags
            (one per item) to results, in order; ``StagedProcessor.run`` with what the caller adds.
        budget (`RunBudget`): rows and padded tokens of one run.
        max_queue_ms (`float`): a request that waited longer than this is refused (``Overloaded``).
        max_wait_ms (`float`, defaults to `0`): how long the model, once free and idle, waits for
            more items before a run; 0 runs at once.
        clock (`Callable[[], float]`, defaults to `time.monotonic`): seconds, for the queue bound.
    """

    def __init__(self, prepare: Callable[[list], list], run: Callable[[list, list], list], budget: RunBudget,
                 max_queue_ms: float, max_wait_ms: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.prepare, self.run, self.budget, self.clock = prepare, run, budget, clock
        self.max_queue_s = max_queue_ms / 1000
        self.max_wait_s = max_wait_ms / 1000
        self.runs = 0
        self.items = 0
        self.refused = 0
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)  # the intake has requests
        self._readied = threading.Condition(self._lock)  # the ready list has items
        self._intake: list[_Request] = []
        self._ready: list[_Ready] = []
        self._threads: list[threading.Thread] = []
        self._closed = False

    def submit_nowait(self, items: Sequence[Any], tag: Any = None, bounded: bool = True) -> Future:
        """A future of the results for ``items``, in order (from any thread: the Kafka loop's, say).

        ``tag`` goes with each of the items to ``run`` (the REST request's trace link). ``bounded=False``
        exempts the request from the queue bound: a Kafka record is not refused (it would be
        dead-lettered), it waits its turn, and the oldest-first rule still runs it.

        Raises:
            RuntimeError: the batcher is closed.
        """
        request = _Request(list(items), tag, self.clock(), bounded)
        if not request.items:
            request.future.set_result([])
            return request.future
        with self._lock:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            if not self._threads:
                self._start()
            self._intake.append(request)
            self._arrived.notify()
        return request.future

    async def submit(self, items: Sequence[Any], tag: Any = None) -> list:
        """The results for ``items``, computed in runs shared with whatever else is queued.

        Cancelling the call (a client that went away) drops its items that have not run yet.
        """
        return await asyncio.wrap_future(self.submit_nowait(items, tag))

    def _start(self) -> None:
        self._threads = [threading.Thread(target=self._guarded, args=(self._tokenize_next,), name="tokenize",
                                          daemon=True),
                         threading.Thread(target=self._guarded, args=(self._run_next,), name="model", daemon=True)]
        for thread in self._threads:
            thread.start()

    def _guarded(self, step: Callable[[], bool]) -> None:
        """Call ``step`` until it says the batcher closed; a step that fails is logged and the thread goes on."""
        while True:
            try:
                if not step():
                    return
            except Exception:  # noqa: BLE001 - the requests in hand got the error; the stage must live on
                logger.exception("batcher stage %s failed", threading.current_thread().name)

    def _tokenize_next(self) -> bool:
        with self._lock:
            while not self._intake and not self._closed:
                self._arrived.wait()
            if self._closed:
                return False
            requests, self._intake = [r for r in self._intake if not r.future.done()], []
        try:
            prepared = self.prepare([item for request in requests for item in request.items])
        except Exception as exc:
            logger.exception("preparing %d requests failed", len(requests))
            for request in requests:
                request.fail(exc)
            return True
        ready, given = [], iter(prepared)
        for request in requests:
            for index in range(len(request.items)):
                item = next(given)
                if item.result is not None:  # answered from the cache
                    request.fill(index, item.result)
                else:
                    ready.append(_Ready(request, index, item))
        if ready:
            with self._lock:
                self._ready.extend(ready)
                self._readied.notify_all()
        return True

    def _run_next(self) -> bool:
        with self._lock:
            idle = not self._ready
            while not self._ready and not self._closed:
                self._readied.wait()
            if self._closed:
                return False
        if idle and self.max_wait_s:
            time.sleep(self.max_wait_s)  # only for models that gain from waiting (a GPU); 0 on CPU
        with self._lock:
            chosen = self._take_run()
        if not chosen:
            return True
        try:
            results = self.run([entry.prepared for entry in chosen], [entry.request.tag for entry in chosen])
        except Exception as exc:  # the run's requests get the error; the others go on
            logger.exception("run of %d items failed", len(chosen))
            for entry in chosen:
                entry.request.fail(exc)
            return True
        self.runs += 1
        self.items += len(chosen)
        for entry, result in zip(chosen, results, strict=True):
            entry.request.fill(entry.index, result)
        return True

    def _take_run(self) -> list[_Ready]:
        """Under the lock: refuse what waited too long, drop what is settled, take the next run off the list."""
        now = self.clock()
        waiting = []
        for entry in self._ready:
            request = entry.request
            if request.future.done():  # failed, refused, or its caller went away
                continue
            waited = now - request.queued_at
            if request.bounded and waited > self.max_queue_s:
                self.refused += request.fail(Overloaded(
                    f"request waited {1000 * waited:.0f} ms in the queue (bound {1000 * self.max_queue_s:.0f} ms); "
                    "retry later"))
                continue
            waiting.append(entry)
        if not waiting:
            self._ready = []
            return []
        # The list is in arrival order, so its first entry is the oldest item: it is in this run.
        picked = next_run([e.prepared.width for e in waiting], 0, self.budget, [e.prepared.rows for e in waiting])
        taken = set(picked)
        self._ready = [entry for k, entry in enumerate(waiting) if k not in taken]
        return [waiting[k] for k in picked]

    def close(self) -> None:
        """Stop both stages (from any thread) after the run in hand; what is still queued fails."""
        with self._lock:
            self._closed = True
            left = [*self._intake, *(entry.request for entry in self._ready)]
            self._intake, self._ready = [], []
            self._arrived.notify_all()
            self._readied.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=60)
        for request in left:
            request.fail(RuntimeError("the service is shutting down"))
