"""Headers of a dead-letter record: the original headers plus why and where it failed."""

from __future__ import annotations

from shared.errors import MessageError

__all__ = ["DLQ_HEADERS", "dlq_headers"]

DLQ_HEADERS = ("error.type", "error.message", "source.topic", "source.partition", "source.offset")

# Kafka headers are small; a long validation message is cut rather than risking the record size.
MAX_ERROR_MESSAGE_BYTES = 2048


def dlq_headers(
    original: list[tuple[str, bytes]] | None,
    error: MessageError,
    topic: str,
    partition: int,
    offset: int,
) -> list[tuple[str, bytes]]:
    """The original headers (minus stale error ones) followed by the DLQ headers."""
    kept = [(k, v) for k, v in (original or []) if k not in DLQ_HEADERS]
    message = error.message.encode("utf-8")[:MAX_ERROR_MESSAGE_BYTES]
    return kept + [
        ("error.type", error.error_type.encode()),
        ("error.message", message),
        ("source.topic", topic.encode()),
        ("source.partition", str(partition).encode()),
        ("source.offset", str(offset).encode()),
    ]
