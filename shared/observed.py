"""A task processor whose answers are shown to observers (prediction metrics, drift) on their way out.

REST and the Kafka loop both call the processor, so an observer wrapped here sees every answer,
whichever path it took, without either path knowing about it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from pydantic import BaseModel

from shared.processors import Received, TaskProcessor

__all__ = ["ObservedProcessor", "ResultObserver"]

logger = logging.getLogger(__name__)


class ResultObserver(Protocol):
    """Something that looks at each batch of answers (it must not change them)."""

    def observe(self, items: Sequence[Received], results: Sequence[BaseModel]) -> None:
        ...


class ObservedProcessor:
    """``processor`` with each batch of results passed to ``observers`` after it is computed.

    An observer that fails is logged (once) and skipped: watching the answers must never stop them.
    Every other attribute (``task``, ``model_id``, ``cache``, ...) is the wrapped processor's.
    """

    def __init__(self, processor: TaskProcessor, observers: Sequence[ResultObserver]) -> None:
        self.processor = processor
        self.observers = list(observers)
        self._failed: set[int] = set()

    def __getattr__(self, name: str):
        return getattr(self.processor, name)

    def process(self, items: Sequence[Received]) -> list[BaseModel]:
        results = self.processor.process(items)
        for observer in self.observers:
            try:
                observer.observe(items, results)
            except Exception:  # noqa: BLE001 - an observer's failure must not fail the answers
                if id(observer) not in self._failed:
                    self._failed.add(id(observer))
                    logger.exception('result observer failed task=%s observer=%s (logged once)',
                                     self.processor.task, type(observer).__name__)
        return results
