"""The consumer loop's pipeline: the model runs one batch while the loop's thread polls the next
and publishes the one before.

kafka-python's consumer is not thread-safe, and a transaction's calls belong to one thread, so
the loop's thread keeps every client call (polls, sends, commits, the rebalance callbacks that
run inside ``poll``) and hands the model only pure work: :class:`ModelWorker` is one thread that
plans one batch at a time (:func:`shared.kafka.batch_plan.plan_batch`), with a hand-off of depth
one. :class:`InFlight` is a batch handed to it, until the loop has published and committed it.

A rebalance runs inside ``poll``, while a batch may be in the model and records polled ahead are
in hand. :class:`Revocations` notes the partitions the group takes away; after the poll the loop
abandons their records (:meth:`InFlight.abandon`, :func:`without_partitions`): their outputs are
never sent and their offsets never committed, and the new owner (this consumer again, after a
seek, or another) reads them from the last commit.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

__all__ = ["InFlight", "ModelWorker", "Revocations", "abandon_revoked", "first_offsets", "without_partitions"]

logger = logging.getLogger(__name__)


def _partition(record) -> tuple[str, int]:
    return (record.topic, record.partition)


def first_offsets(records: Iterable) -> dict[tuple[str, int], int]:
    """The lowest offset of ``records`` per ``(topic, partition)``: where a re-read starts."""
    first: dict[tuple[str, int], int] = {}
    for record in records:
        key = _partition(record)
        first[key] = min(first.get(key, record.offset), record.offset)
    return first


def without_partitions(records: Sequence, partitions: set[tuple[str, int]]) -> list:
    """``records`` less those of ``partitions`` (``(topic, partition)`` pairs)."""
    return [record for record in records if _partition(record) not in partitions]


class ModelWorker:
    """One daemon thread that runs one job at a time: the model side of the pipeline.

    The queue holds at most one job: the loop queues batch N+1 while N runs, so the model starts it
    the moment N is done, and the loop never polls ahead of the model by more than that one batch.
    A job's exception is its future's, raised in the loop's thread when it takes the result.

    Args:
        name (`str`): the thread's name.
    """

    def __init__(self, name: str) -> None:
        self._jobs: queue.Queue = queue.Queue(maxsize=1)
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], Any]) -> Future:
        future: Future = Future()
        self._jobs.put((future, job))
        return future

    def close(self) -> None:
        """Finish the job in hand (its result is the caller's to take or drop), then end the thread."""
        self._jobs.put(None)
        self._thread.join()

    def _serve(self) -> None:
        while (item := self._jobs.get()) is not None:
            future, job = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(job())
            except BaseException as exc:  # noqa: BLE001 - handed to the loop's thread, which decides
                future.set_exception(exc)


@dataclass
class InFlight:
    """A batch handed to the model and not yet committed.

    Args:
        records (`list`): the polled records, in partition order.
        future (`Future`): the model's :class:`~shared.kafka.batch_plan.BatchPlan` of them.
        span: the batch's tracing span, ended once the batch is committed or dropped.
        started (`float`): ``time.perf_counter()`` at the hand-over, for the batch latency.
    """

    records: list
    future: Future
    span: Any
    started: float
    abandoned: set[tuple[str, int]] = field(default_factory=set)

    def done(self) -> bool:
        return self.future.done()

    def abandon(self, partitions: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """Give up the records of ``partitions`` (revoked while the batch was in the model): none of
        their outputs is sent, none of their offsets committed. Returns their first offsets."""
        gone = [record for record in self.records if _partition(record) in partitions]
        self.abandoned |= {_partition(record) for record in gone}
        return first_offsets(gone)

    def kept(self) -> list:
        """The records still this consumer's to finish."""
        return without_partitions(self.records, self.abandoned) if self.abandoned else self.records

    def end(self) -> None:
        """End the span of a batch that was dropped rather than committed (its clients failed)."""
        self.span.end()


class Revocations:
    """Partitions the group took away during a poll, noted by the rebalance callbacks (which run
    inside ``poll``, on kafka-python's IO thread while the loop's thread waits in it) and taken by
    the loop's thread once the poll returns."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._partitions: set[tuple[str, int]] = set()

    def note(self, partitions: Iterable) -> None:
        with self._lock:
            self._partitions |= {(tp.topic, tp.partition) for tp in partitions}

    def take(self) -> set[tuple[str, int]]:
        with self._lock:
            taken, self._partitions = self._partitions, set()
        return taken


def abandon_revoked(partitions: set[tuple[str, int]], inflight: InFlight | None,
                    records: list) -> tuple[dict[tuple[str, int], int], list]:
    """Abandon every record in hand of ``partitions`` (taken by a rebalance): those of the batch in
    the model (:meth:`InFlight.abandon`) and those polled ahead. Returns the first abandoned offset
    per partition, where a re-read must start, and ``records`` without them."""
    abandoned = inflight.abandon(partitions) if inflight is not None else {}
    for partition, offset in first_offsets(r for r in records if _partition(r) in partitions).items():
        abandoned[partition] = min(offset, abandoned.get(partition, offset))
    return abandoned, without_partitions(records, set(abandoned))
