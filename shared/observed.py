"""A task processor whose answers are shown to observers (prediction metrics, drift) on their way out.

REST and the Kafka loop both call the processor, so an observer wrapped here sees every answer,
whichever path it took, without either path knowing about it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from pydantic import BaseModel

from shared.processors import Prepared, Received, StagedProcessor, process_in_runs

__all__ = ["ObservedProcessor", "ResultObserver"]

logger = logging.getLogger(__name__)


class ResultObserver(Protocol):
    """Something that looks at each batch of answers (it must not change them)."""

    def observe(self, items: Sequence[Received], results: Sequence[BaseModel]) -> None:
        ...


class ObservedProcessor:
    """``processor`` with each run's results, and each answer from the cache, passed to ``observers``.

    An observer that fails is logged (once) and skipped: watching the answers must never stop them.
    Every other attribute (``task``, ``model_id``, ``cache``, ...) is the wrapped processor's.
    """

    def __init__(self, processor: StagedProcessor, observers: Sequence[ResultObserver]) -> None:
        self.processor = processor
        self.observers = list(observers)
        self._failed: set[int] = set()

    def __getattr__(self, name: str):
        return getattr(self.processor, name)

    def prepare(self, items: Sequence[Received]) -> list[Prepared]:
        """The wrapped processor's ``prepare``; the answers the cache gave are shown to the observers now."""
        prepared = self.processor.prepare(items)
        answered = [p for p in prepared if p.result is not None]
        if answered:
            self._observe([p.item for p in answered], [p.result for p in answered])
        return prepared

    def run(self, prepared: Sequence[Prepared]) -> list[BaseModel]:
        results = self.processor.run(prepared)
        self._observe([p.item for p in prepared], results)
        return results

    def process(self, items: Sequence[Received]) -> list[BaseModel]:
        # Through this wrapper's own stages, so every answer is observed once, from the cache or the model.
        return process_in_runs(self, items)

    def _observe(self, items: Sequence[Received], results: Sequence[BaseModel]) -> None:
        for observer in self.observers:
            try:
                observer.observe(items, results)
            except Exception:  # noqa: BLE001 - an observer's failure must not fail the answers
                if id(observer) not in self._failed:
                    self._failed.add(id(observer))
                    logger.exception('result observer failed task=%s observer=%s (logged once)',
                                     self.processor.task, type(observer).__name__)
