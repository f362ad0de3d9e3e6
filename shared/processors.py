"""The small interface behind which each task's logic sits.

A :class:`TaskProcessor` turns validated requests into result models. The REST API and
the Kafka loop both call it, so the two paths give identical answers. Which processor serves
a model folder is the task-kind registry's to say (:func:`shared.task_kinds.load_processor`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol

from pydantic import BaseModel

from shared.cache import ResultCache
from shared.model_text import model_text
from shared.runtime import OnnxTextClassifier
from shared.schemas import ClassificationResultV1, EntitiesResultV1, EntitySpanV1, LabelScore, TaskRequestV1

__all__ = ["ClassificationProcessor", "EntitiesProcessor", "Received", "TaskProcessor", "new_id"]

TOP_K = 3


def new_id() -> str:
    import uuid

    return uuid.uuid4().hex


@dataclass(frozen=True)
class Received:
    """A validated request with the moment it arrived (wall clock and monotonic)."""

    request: TaskRequestV1
    id: str
    at: datetime
    monotonic: float

    @classmethod
    def now(cls, request: TaskRequestV1, fallback_id: str | None = None) -> "Received":
        return cls(request, request.id or fallback_id or new_id(), datetime.now(timezone.utc), time.perf_counter())


class TaskProcessor(Protocol):
    """What a task service needs from its model."""

    task: str
    model_id: str

    def process(self, items: Sequence[Received]) -> list[BaseModel]:
        """One result per item, in order; each result's ``review`` says whether a person should look."""
        ...


class _ModelProcessor:
    """What both processors hold: the task name, the loaded model and the review threshold.

    Args:
        task (`str`): task name written into every result.
        model: the loaded model folder (:class:`OnnxTextClassifier` or :class:`OnnxEntityRecognizer`).
        review_threshold (`float | None`): overrides the model's stored threshold.
        cache_size (`int`, defaults to `0`): answers kept for repeated inputs (0: no cache).
    """

    def __init__(self, task: str, model, review_threshold: float | None = None, cache_size: int = 0) -> None:
        self.task = task
        self.model = model
        self.model_id = model.model_id
        self.threshold = model.info.review_threshold if review_threshold is None else review_threshold
        self.cache: ResultCache = ResultCache(cache_size, task, self.model_id)

    def _answer_fields(self, item: Received, done: float) -> dict:
        """The fields every result carries about its answer: whose, by which model, when received, how long
        it took (``done``: the ``perf_counter`` time the batch's answers were ready)."""
        return {"id": item.id, "task": self.task, "model": self.model_id, "received_at": item.at,
                "latency_ms": round((done - item.monotonic) * 1000, 3)}


class ClassificationProcessor(_ModelProcessor):
    """Sequence classification: transactions, helpdesk and sentiment (see :class:`_ModelProcessor`)."""

    def __init__(self, task: str, model: OnnxTextClassifier, review_threshold: float | None = None,
                 cache_size: int = 0) -> None:
        super().__init__(task, model, review_threshold, cache_size)
        # The fields the model was trained with, in training order; a request's others are ignored.
        self.field_names = tuple(model.info.columns.get("fields", ()))

    def model_input(self, request: TaskRequestV1) -> str:
        """What the encoder reads for ``request``, and its cache key.

        Runs of whitespace read alike to the tokenizer, so they are collapsed to share an entry.
        """
        return " ".join(model_text(request.text, request.fields, self.field_names).split())

    def process(self, items: Sequence[Received]) -> list[ClassificationResultV1]:
        texts = [self.model_input(i.request) for i in items]
        predictions = self.cache.get_or_compute(texts, lambda missing: self.model.predict(missing, self.threshold))
        done = time.perf_counter()
        return [
            ClassificationResultV1(
                **self._answer_fields(item, done),
                label=p.label,
                score=p.score,
                scores=p.scores,
                top=[LabelScore(label=label, score=score) for label, score in p.top(TOP_K)],
                review=p.review,
            )
            for item, p in zip(items, predictions)
        ]


class EntitiesProcessor(_ModelProcessor):
    """Entity extraction: spans with type, text, character offsets and score (see :class:`_ModelProcessor`)."""

    def process(self, items: Sequence[Received]) -> list[EntitiesResultV1]:
        # Keyed on the exact text: entity offsets point into it.
        found = self.cache.get_or_compute([item.request.text for item in items], self.model.predict)
        done = time.perf_counter()
        return [
            EntitiesResultV1(
                **self._answer_fields(item, done),
                entities=[EntitySpanV1(type=e.type, text=e.text, start=e.start, end=e.end, score=e.score)
                          for e in entities],
                review=any(e.score < self.threshold for e in entities),
            )
            for item, entities in zip(items, found)
        ]
