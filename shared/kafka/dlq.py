"""Dead-letter records: the original key, value and headers, plus why and where it failed.

:func:`dead_letter` builds every DLQ record the consumer loop produces: for a request that is
invalid or failed in the model, for a result the producer refused, and for a record the client
could not decode.
"""

from __future__ import annotations

from shared.errors import MessageError
from shared.kafka.outgoing import OutgoingRecord

__all__ = ["DLQ_HEADERS", "clean_headers", "dead_letter", "dlq_headers", "dlq_value"]

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


def dead_letter(topic: str, source: tuple[str, int, int], error: MessageError, *, key: bytes | None,
                value: bytes | None, headers: list[tuple[str, bytes | None]] | None,
                max_value_bytes: int) -> OutgoingRecord:
    """The DLQ record of the request at ``source``.

    Args:
        topic (`str`): the task's DLQ topic.
        source (`tuple[str, int, int]`): topic, partition and offset of the request.
        error (`MessageError`): why; its type and message go to ``error.type`` and ``error.message``.
        key (`bytes | None`): the request's key.
        value (`bytes | None`): the request's value, cut to ``max_value_bytes`` (:func:`dlq_value`);
            None keeps only the pointer (``source.*``).
        headers (`list | None`): the request's headers, kept ahead of the DLQ headers.
        max_value_bytes (`int`): most bytes of ``value`` kept.
    """
    value, size_headers = dlq_value(value, max_value_bytes)
    # A record with neither key nor value cannot be produced as is: give it an empty key.
    key = key if (key is not None or value is not None) else b""
    return OutgoingRecord(topic, key, value, dlq_headers(headers, error, *source) + size_headers, source)
