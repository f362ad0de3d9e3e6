"""Result of the classification tasks (sentiment, and later transactions and helpdesk)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

__all__ = ["ClassificationResultV1", "LabelScore"]


class LabelScore(BaseModel):
    label: str
    score: float


class ClassificationResultV1(BaseModel):
    """The result value published to ``<task>.results`` and returned by REST.

    Args:
        id (`str`): the request's id (or a generated one).
        task (`str`): task name.
        model (`str`): ``name:version`` of the model that produced it.
        label (`str`): the top label.
        score (`float`): probability of the top label.
        scores (`dict[str, float]`): probability of every label.
        top (`list[LabelScore]`): the best labels, highest first.
        review (`bool`): true when ``score`` is under the model's review threshold.
        received_at (`datetime`): when the service received the item (UTC).
        latency_ms (`float`): time from receipt to result.
    """

    id: str
    task: str
    model: str
    label: str
    score: float = Field(ge=0, le=1)
    scores: dict[str, float]
    top: list[LabelScore]
    review: bool
    received_at: datetime
    latency_ms: float
