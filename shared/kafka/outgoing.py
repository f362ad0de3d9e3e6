"""A record the consumer loop is to produce: a result, a review copy or a dead letter."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["OutgoingRecord"]


@dataclass(frozen=True)
class OutgoingRecord:
    """A record to produce, with the coordinates of the request it answers and, for a result,
    that request's value (what a DLQ record carries if the result cannot be produced)."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    source: tuple[str, int, int] = ("", -1, -1)
    original: bytes | None = None
