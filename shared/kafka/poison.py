"""Records the client library cannot decode ("poison pills"): find them, salvage them, skip them.

kafka-python parses a fetched batch inside ``poll``. A record it cannot decode (a header key
that is not UTF-8, a batch whose CRC fails, a compression codec it lacks) makes every ``poll``
raise, at the same position, for ever: the partition stalls and the records behind it are never
answered. :func:`locate_undecodable` finds which partition and which offsets are unreadable with a
short-lived probe consumer (no group, one partition at a time, from the main consumer's
positions), so the loop can dead-letter them (:func:`undecodable_dead_letters`) and seek past them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.errors import MessageError
from shared.kafka.dlq import dead_letter
from shared.kafka.outgoing import OutgoingRecord

__all__ = ["Undecodable", "find_undecodable", "is_decode_error", "locate_undecodable", "salvage",
           "undecodable_dead_letters"]

logger = logging.getLogger(__name__)

# Broker and connection failures are retried (retriable ones keep the clients); only these (and errors
# that are not Kafka errors at all, raised while parsing) can be a record that will never decode.
_DECODE_ERROR_NAMES = ("CorruptRecordError", "UnsupportedCodecError", "InvalidRecordError")


def is_decode_error(exc: BaseException) -> bool:
    """Whether ``exc`` from ``poll`` may come from a record kafka-python cannot decode."""
    from kafka.errors import KafkaError

    if type(exc).__name__ in _DECODE_ERROR_NAMES:
        return True
    # A client-level failure (connection, timeout, authorisation, fencing) is a KafkaError;
    # a parser failure is not (UnicodeDecodeError, struct.error, a codec's own error).
    return not isinstance(exc, KafkaError)


@dataclass(frozen=True)
class Undecodable:
    """Unreadable offsets ``[first, end)`` of one partition, and what the library said."""

    partition: Any  # kafka TopicPartition
    first: int
    end: int
    error: str


class _Probe:
    """Reads one offset of one partition; ``"bad"``, ``"ok"`` or ``"none"`` (nothing there)."""

    def __init__(self, consumer, timeout_s: float) -> None:
        self.consumer = consumer
        self.timeout_s = timeout_s
        self.error = ""

    def read(self, tp, offset: int) -> str:
        self.consumer.assign([tp])
        self.consumer.seek(tp, offset)
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            try:
                polled = self.consumer.poll(timeout_ms=200, max_records=1)
            except Exception as exc:  # noqa: BLE001 - any failure to decode is the answer
                if not is_decode_error(exc):
                    raise
                self.error = f"{type(exc).__name__}: {exc}"
                return "bad"
            if any(polled.values()):
                return "ok"
        return "none"


def _bad_region_end(probe: _Probe, tp, first: int, end_offset: int) -> int:
    """First readable offset after ``first`` (a bad batch spans several offsets), offset by offset.

    One step at a time, not by doubling and bisection: two bad regions with a good record between
    them would let a search jump over that record and send it to the DLQ. Poison pills are rare,
    and one probe is one fetch of data the broker has at hand.
    """
    candidate = first + 1
    while candidate < end_offset and probe.read(tp, candidate) == "bad":
        candidate += 1
    return min(candidate, end_offset)


def locate_undecodable(probe_consumer: Callable[[], Any], positions: Mapping[Any, int],
                       end_offsets: Mapping[Any, int], timeout_s: float = 5.0) -> Undecodable | None:
    """The unreadable region at one of ``positions`` (the main consumer's), or None if every
    partition reads (the failure was not a record's).

    Args:
        probe_consumer (`Callable[[], KafkaConsumer]`): makes a consumer without a group.
        positions (`Mapping[TopicPartition, int]`): next offset to read of each assigned partition.
        end_offsets (`Mapping[TopicPartition, int]`): the partitions' high watermarks.
        timeout_s (`float`, defaults to `5`): longest wait for one offset.
    """
    consumer = probe_consumer()
    try:
        probe = _Probe(consumer, timeout_s)
        for tp in sorted(positions, key=lambda p: (p.topic, p.partition)):
            first = positions[tp]
            if first >= end_offsets.get(tp, first + 1) or probe.read(tp, first) != "bad":
                continue
            error = probe.error
            end = _bad_region_end(probe, tp, first, end_offsets.get(tp, first + 1))
            return Undecodable(tp, first, end, error)
        return None
    finally:
        consumer.close(autocommit=False)


def find_undecodable(consumer, assigned: list, probe_consumer: Callable[[], Any]) -> Undecodable | None:
    """The unreadable region at the position of one of ``assigned`` (partitions of ``consumer``, the
    main consumer), or None if every one reads (the failure was not a record's)."""
    positions = {tp: consumer.position(tp, timeout_ms=5_000) for tp in assigned}
    ends = consumer.end_offsets(assigned, timeout_ms=5_000)
    return locate_undecodable(probe_consumer, positions, ends)


def salvage(consumer, tp, first: int, end: int, timeout_s: float = 2.0) -> dict[int, Any]:
    """The records of ``[first, end)`` that ``consumer`` (made with ``check_crcs=False``) can read,
    by offset: a batch whose checksum fails may still hold the original bytes. Empty when the
    library cannot parse them at all (a header key that is not UTF-8, a codec it lacks)."""
    found: dict[int, Any] = {}
    try:
        consumer.assign([tp])
    except Exception:  # noqa: BLE001 - nothing can be had; the DLQ records keep the pointer
        return found
    position = first
    deadline = time.monotonic() + timeout_s
    while position < end and time.monotonic() < deadline:
        try:
            consumer.seek(tp, position)
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    if first <= record.offset < end:
                        found[record.offset] = record
                    position = max(position, record.offset + 1)
        except Exception:  # noqa: BLE001 - this offset cannot be read: its DLQ record keeps the pointer
            position += 1
    return found


def undecodable_dead_letters(found: Undecodable, salvager: Callable[[], Any], dlq_topic: str,
                             max_value_bytes: int) -> list[OutgoingRecord]:
    """One DLQ record (``error.type=undecodable``) per unreadable offset of ``found``: the original
    key, value and headers where ``salvager()`` (a consumer made with ``check_crcs=False``, closed
    here) reads them, else only the pointer (``source.*``) and the error."""
    tp = found.partition
    consumer = salvager()
    try:
        salvaged = salvage(consumer, tp, found.first, found.end)
    finally:
        consumer.close(autocommit=False)
    error = MessageError("undecodable", f"the client could not decode the record: {found.error}")
    outgoing = []
    for offset in range(found.first, found.end):
        record = salvaged.get(offset)
        outgoing.append(dead_letter(dlq_topic, (tp.topic, tp.partition, offset), error,
                                    key=getattr(record, "key", None), value=getattr(record, "value", None),
                                    headers=getattr(record, "headers", None), max_value_bytes=max_value_bytes))
    return outgoing
