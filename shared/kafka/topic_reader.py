"""Reading a topic to the end it had when the read began, and the JSON objects in its records.

For tools that read records once (``slm feedback export``, ``slm compare``, ``slm drift``), not for
the services' loops: no consumer group, nothing committed, no topic auto-created, so reading
changes nothing on the broker.
"""

from __future__ import annotations

import json
import logging
import time

from shared.errors import SlmError
from shared.kafka.settings import KafkaSettings

__all__ = ["NotAJsonObject", "TopicReadError", "json_object", "read_topic", "read_topic_or_none"]

logger = logging.getLogger(__name__)


class TopicReadError(SlmError):
    """A topic could not be read to its end in time (the broker is down or too slow)."""


class NotAJsonObject(ValueError):
    """A record value that is not a JSON object; the message says why without quoting the value."""


def json_object(value: bytes | None) -> dict:
    """``value`` (a record's) parsed as a JSON object.

    Raises:
        NotAJsonObject: empty, not UTF-8, not JSON or not an object; the reason never quotes the value.
    """
    if not value:
        raise NotAJsonObject("empty value")
    try:
        payload = json.loads(value.decode("utf-8"))
    except UnicodeDecodeError:
        raise NotAJsonObject("not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise NotAJsonObject(f"not JSON ({exc.msg})") from None
    if not isinstance(payload, dict):
        raise NotAJsonObject(f"not a JSON object ({type(payload).__name__})")
    return payload


def read_topic(settings: KafkaSettings, topic: str, *, timeout_s: float = 120.0, last: int | None = None) -> list:
    """:func:`read_topic_or_none` with the services' connection, and none for a missing topic."""
    return read_topic_or_none(settings.client_options(), topic, timeout_s=timeout_s, last=last) or []


def read_topic_or_none(options: dict, topic: str, *, timeout_s: float = 120.0, last: int | None = None) -> list | None:
    """The records of ``topic`` up to its end offsets taken when the read starts, partition by partition in
    offset order (kafka-python ``ConsumerRecord``); None when the topic does not exist.

    Every record from the beginning, or with ``last=N`` each partition's from ``N`` offsets before its end.
    Offsets are not records: under exactly-once each transaction's commit marker takes an offset too (and an
    aborted batch's records are skipped), so the last ``N`` offsets can hold fewer than ``N`` records.

    Read ``read_committed``: under exactly-once the services' records belong to transactions, and
    an aborted batch's must not count. ``options`` are kafka-python's connection options
    (:func:`shared.kafka.clients.client_options`, ``KafkaSettings.client_options()``).

    Raises:
        TopicReadError: the end was not reached within ``timeout_s``; a partial read would
            make the caller's counts wrong, so nothing is returned.
    """
    from kafka import KafkaConsumer, TopicPartition

    # No auto-creation: a tool that asks about a missing topic must not create it (with the broker's defaults).
    consumer = KafkaConsumer(**options, group_id=None, enable_auto_commit=False, isolation_level="read_committed",
                             auto_offset_reset="earliest", allow_auto_create_topics=False)
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            logger.info('topic=%s does not exist: no records', topic)
            return None
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        # The end as of now: records published while we read belong to the next read.
        ends = consumer.end_offsets(tps)
        if last is None:
            consumer.seek_to_beginning(*tps)
        else:
            begins = consumer.beginning_offsets(tps)
            for tp in tps:
                consumer.seek(tp, max(begins[tp], ends[tp] - max(0, last)))
        by_partition: dict = {tp: [] for tp in tps}
        deadline = time.monotonic() + timeout_s
        pending = [tp for tp in tps if consumer.position(tp) < ends[tp]]
        while pending:
            if time.monotonic() > deadline:
                behind = {tp.partition: ends[tp] - consumer.position(tp) for tp in pending}
                raise TopicReadError(f"topic {topic!r} not read to its end in {timeout_s:.0f}s "
                                     f"(records left by partition: {behind})")
            for tp, records in consumer.poll(timeout_ms=500).items():
                by_partition[tp].extend(r for r in records if r.offset < ends[tp])
            pending = [tp for tp in pending if consumer.position(tp) < ends[tp]]
        return [record for tp in tps for record in by_partition[tp]]
    finally:
        _close_quietly(consumer)


def _close_quietly(consumer) -> None:
    """Close ``consumer`` without kafka-python's ``Metadata refresh: failed Cancelled`` ERROR line: a refresh
    that our own close cancels is no failure, and a tool's user would read it as one."""
    cluster_log = logging.getLogger("kafka.cluster")
    level = cluster_log.level
    cluster_log.setLevel(logging.CRITICAL)
    try:
        consumer.close()
    finally:
        cluster_log.setLevel(level)
