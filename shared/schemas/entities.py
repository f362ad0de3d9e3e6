"""Result of the entities task: spans with type, text, character offsets and score."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

__all__ = ["EntitiesResultV1", "EntitySpanV1"]


class EntitySpanV1(BaseModel):
    """One entity: ``text == request.text[start:end]`` (Python string indices, code points)."""

    type: str
    text: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    score: float = Field(ge=0, le=1)


class EntitiesResultV1(BaseModel):
    """The result value published to ``entities.results`` and returned by REST.

    Args:
        id (`str`): the request's id (or a generated one).
        task (`str`): task name.
        model (`str`): ``name:version`` of the model that produced it.
        entities (`list[EntitySpanV1]`): entities in text order (may be empty).
        review (`bool`): true when any entity scores under the model's review threshold.
        received_at (`datetime`): when the service received the item (UTC).
        latency_ms (`float`): time from receipt to result.
    """

    id: str
    task: str
    model: str
    entities: list[EntitySpanV1]
    review: bool
    received_at: datetime
    latency_ms: float
