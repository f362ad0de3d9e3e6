"""Headers of a dead-letter record: the original headers plus why and where it failed."""

from __future__ import annotations

from shared.errors import MessageError

__all__ = ["DLQ_HEADERS", "clean_headers", "dlq_headers", "dlq_value"]

DLQ_HEADERS = ("error.type", "error.message", "source.topic", "source.partition", "source.offset")
# Present when the DLQ record carries only the start of the original value.
TRUNCATION_HEADERS = ("original.size", "original.truncated")

# Kafka headers are small; a long validation message is cut rather than risking the record size.
MAX_ERROR_MESSAGE_BYTES = 2048


def clean_headers(headers: list[tuple[str, bytes | None]] | None) -> list[tuple[str, bytes]]:
    """Headers as the producer accepts them: Kafka allows null header values, kafka-python's send does not."""
    return [(key, value if value is not None else b"") for key, value in (headers or [])]


def dlq_headers(
    original: list[tuple[str, bytes]] | None,
    error: MessageError,
    topic: str,
    partition: int,
    offset: int,
) -> list[tuple[str, bytes]]:
    """The original headers (minus stale error ones) followed by the DLQ headers."""
    kept = [(k, v) for k, v in clean_headers(original) if k not in DLQ_HEADERS + TRUNCATION_HEADERS]
    # Cut on a character boundary so the header stays valid UTF-8.
    message = error.message.encode("utf-8")[:MAX_ERROR_MESSAGE_BYTES].decode("utf-8", "ignore").encode("utf-8")
    return kept + [
        ("error.type", error.error_type.encode()),
        ("error.message", message),
        ("source.topic", topic.encode()),
        ("source.partition", str(partition).encode()),
        ("source.offset", str(offset).encode()),
    ]


def dlq_value(value: bytes | None, limit: int) -> tuple[bytes | None, list[tuple[str, bytes]]]:
    """The original value as a DLQ record can carry it: whole, or its first ``limit`` bytes plus
    the headers ``original.size`` (bytes of the whole value) and ``original.truncated``.

    The ``source.*`` headers point at the whole record, which stays in the requests topic for
    its retention time.
    """
    if value is None or len(value) <= limit:
        return value, []
    return value[:limit], [("original.size", str(len(value)).encode()), ("original.truncated", b"true")]
