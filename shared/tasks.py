"""The small interface behind which each task's logic sits.

A :class:`TaskProcessor` turns validated requests into result models. The REST API and
the Kafka loop both call it, so the two paths give identical answers.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol

from pydantic import BaseModel

from shared.runtime import OnnxTextClassifier
from shared.schemas import ClassificationResultV1, LabelScore, TaskRequestV1

__all__ = ["ClassificationProcessor", "Received", "TaskProcessor", "model_text", "new_id"]

TOP_K = 3


def model_text(text: str, fields: dict) -> str:
    """The encoder's input: the text, then ``name: value`` for each non-empty extra field.

    Training (pipelines) and serving use this one function, so both see the same input.
    """
    extras = " | ".join(f"{k}: {v}" for k, v in fields.items() if v is not None and str(v).strip())
    return f"{text} | {extras}" if extras else text


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

    def process(self, items: Sequence[Received]) -> list[BaseModel]: ...

    def needs_review(self, result: BaseModel) -> bool: ...


class ClassificationProcessor:
    """Sequence classification (sentiment now; transactions and helpdesk share it).

    Args:
        task (`str`): task name written into every result.
        model (`OnnxTextClassifier`): the loaded model folder.
        review_threshold (`float | None`): overrides the model's stored threshold.
    """

    def __init__(self, task: str, model: OnnxTextClassifier, review_threshold: float | None = None) -> None:
        self.task = task
        self.model = model
        self.model_id = model.model_id
        self.threshold = model.info.review_threshold if review_threshold is None else review_threshold

    def process(self, items: Sequence[Received]) -> list[ClassificationResultV1]:
        predictions = self.model.predict([model_text(i.request.text, i.request.fields) for i in items], self.threshold)
        done = time.perf_counter()
        return [
            ClassificationResultV1(
                id=item.id,
                task=self.task,
                model=self.model_id,
                label=p.label,
                score=p.score,
                scores=p.scores,
                top=[LabelScore(label=label, score=score) for label, score in p.top(TOP_K)],
                review=p.review,
                received_at=item.at,
                latency_ms=round((done - item.monotonic) * 1000, 3),
            )
            for item, p in zip(items, predictions)
        ]

    def needs_review(self, result: ClassificationResultV1) -> bool:
        return result.review
