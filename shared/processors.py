"""The small interface behind which each task's logic sits.

A :class:`TaskProcessor` turns validated requests into result models. The REST API and
the Kafka loop both call it, so the two paths give identical answers. Which processor serves
a model folder is the task-kind registry's to say (:func:`shared.task_kinds.load_processor`).

A processor works in two stages, so that a batcher can tokenize what comes next while the
model runs what came before (:mod:`shared.rest_batching`):

- :meth:`~StagedProcessor.prepare`: the model text, the response cache and the tokenizer, once per
  item; an item the cache answers comes back with its result;
- :meth:`~StagedProcessor.run`: the model on one run of prepared items (cut by
  :mod:`shared.run_planner`) and the results.

``process(items)`` is the two stages with the planner's runs in between (:func:`process_in_runs`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from pydantic import BaseModel

from shared.cache import ResultCache
from shared.model_text import model_text
from shared.run_planner import RunBudget, plan_runs
from shared.runtime import OnnxTextClassifier
from shared.schemas import ClassificationResultV1, EntitiesResultV1, EntitySpanV1, LabelScore, TaskRequestV1

__all__ = ["ClassificationProcessor", "EntitiesProcessor", "Prepared", "Received", "StagedProcessor",
           "TaskProcessor", "new_id", "process_in_runs"]

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


@dataclass
class Prepared:
    """One item ready for the model: its cache key and encoded input, or its result from the cache.

    ``width`` (tokens of its longest row) and ``rows`` (rows it takes in a run) are what the
    planner cuts runs by.
    """

    item: Received
    key: str
    encoded: Any = None
    width: int = 0
    rows: int = 1
    result: BaseModel | None = None


class TaskProcessor(Protocol):
    """What a task service needs from its model."""

    task: str
    model_id: str

    def process(self, items: Sequence[Received]) -> list[BaseModel]:
        """One result per item, in order; each result's ``review`` says whether a person should look."""
        ...


class StagedProcessor(TaskProcessor, Protocol):
    """A processor whose tokenization and model runs can happen in different threads."""

    budget: RunBudget

    def prepare(self, items: Sequence[Received]) -> list[Prepared]:
        """Each item tokenized once (or answered from the cache), in order."""
        ...

    def run(self, prepared: Sequence[Prepared]) -> list[BaseModel]:
        """The results of one run of items not answered yet, in order."""
        ...


def process_in_runs(processor: StagedProcessor, items: Sequence[Received]) -> list[BaseModel]:
    """``prepare``, the planner's runs (the earliest item first, :func:`shared.run_planner.plan_runs`), ``run``."""
    prepared = processor.prepare(items)
    results: list[BaseModel | None] = [p.result for p in prepared]
    todo = [k for k, p in enumerate(prepared) if p.result is None]
    for run in plan_runs([prepared[k].width for k in todo], processor.budget, [prepared[k].rows for k in todo]):
        chosen = [todo[i] for i in run]
        for k, result in zip(chosen, processor.run([prepared[k] for k in chosen]), strict=True):
            results[k] = result
    return results  # type: ignore[return-value]


class _ModelProcessor:
    """What both processors hold: the task name, the loaded model, the review threshold, the runs' budget.

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
        # The model's own bounds of one run (SLM_ONNX_BATCH_SIZE, SLM_ONNX_BATCH_TOKENS) are the planner's.
        self.budget = RunBudget(getattr(model, "max_batch_size", 64), getattr(model, "max_batch_tokens", None))

    def _answer_fields(self, item: Received, done: float) -> dict:
        """The fields every result carries about its answer: whose, by which model, when received, how long
        it took (``done``: the ``perf_counter`` time the batch's answers were ready)."""
        return {"id": item.id, "task": self.task, "model": self.model_id, "received_at": item.at,
                "latency_ms": round((done - item.monotonic) * 1000, 3)}

    def model_input(self, request: TaskRequestV1) -> str:
        return request.text

    def prepare(self, items: Sequence[Received]) -> list[Prepared]:
        keys = [self.model_input(item.request) for item in items]
        found = self.cache.lookup(keys)
        done = time.perf_counter()
        prepared = [Prepared(item, key, result=None if answer is None else self._result(item, answer, done))
                    for item, key, answer in zip(items, keys, found)]
        todo = [p for p in prepared if p.result is None]
        for p, encoded in zip(todo, self.model.encode([p.key for p in todo])):
            p.encoded = encoded
            p.width, p.rows = self._shape(encoded)
        return prepared

    def run(self, prepared: Sequence[Prepared]) -> list[BaseModel]:
        # An input repeated within the run is computed once (the cache counts the repeats as hits).
        distinct = list({p.key: p for p in prepared}.values())
        answers = dict(zip((p.key for p in distinct), self._answers([p.encoded for p in distinct]), strict=True))
        self.cache.remember([p.key for p in prepared], [answers[p.key] for p in prepared])
        done = time.perf_counter()
        return [self._result(p.item, answers[p.key], done) for p in prepared]

    def process(self, items: Sequence[Received]) -> list[BaseModel]:
        return process_in_runs(self, items)

    def _shape(self, encoded) -> tuple[int, int]:
        raise NotImplementedError

    def _answers(self, encoded: list) -> list:
        raise NotImplementedError

    def _result(self, item: Received, answer, done: float) -> BaseModel:
        raise NotImplementedError


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

    def _shape(self, encoded: list[int]) -> tuple[int, int]:
        return len(encoded), 1

    def _answers(self, encoded: list) -> list:
        return self.model.predictions(self.model.probabilities(encoded), self.threshold)

    def _result(self, item: Received, p, done: float) -> ClassificationResultV1:
        return ClassificationResultV1(**self._answer_fields(item, done), label=p.label, score=p.score, scores=p.scores,
                                      top=[LabelScore(label=label, score=score) for label, score in p.top(TOP_K)],
                                      review=p.review)


class EntitiesProcessor(_ModelProcessor):
    """Entity extraction: spans with type, text, character offsets and score (see :class:`_ModelProcessor`).

    The cache key is the exact text: entity offsets point into it. A text longer than the model's
    window takes one row per window in a run.
    """

    def _shape(self, encoded) -> tuple[int, int]:
        return encoded.width, encoded.rows

    def _answers(self, encoded: list) -> list:
        return self.model.entities_of(encoded)

    def _result(self, item: Received, entities, done: float) -> EntitiesResultV1:
        return EntitiesResultV1(**self._answer_fields(item, done),
                                entities=[EntitySpanV1(type=e.type, text=e.text, start=e.start, end=e.end,
                                                       score=e.score) for e in entities],
                                review=any(e.score < self.threshold for e in entities))
