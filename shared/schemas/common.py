"""The request value every task topic accepts: ``{"id", "text", "fields"}``."""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["MAX_TEXT_CHARS", "FieldValue", "TaskRequestV1"]

# Longer texts are refused rather than silently truncated by the tokenizer far downstream.
MAX_TEXT_CHARS = 20_000

FieldValue = Union[str, int, float, bool, None]


class TaskRequestV1(BaseModel):
    """One item to process.

    Args:
        id (`str | None`): caller's identifier, echoed in the result; generated when absent.
        text (`str`): the text to analyse; must contain a non-blank character.
        fields (`dict`, defaults to `{}`): task extras such as ``amount`` or ``currency``.
    """

    # No JSON-schema "examples" here: BentoML 1.4's OpenAPI generator rejects the key;
    # each service gives its sample input as the API argument's default instead.
    model_config = ConfigDict(extra="forbid")

    id: Annotated[str | None, Field(default=None, min_length=1, max_length=256, description="Caller's id, echoed back")]
    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS, description="Text to analyse")]
    fields: Annotated[dict[str, FieldValue], Field(default_factory=dict, description="Task extras")]

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text is empty or whitespace only")
        return value
