"""Reading a whole topic, from its first record to the end it had when the read began.

For tools that need every record once (``slm feedback export``), not for the services' loops:
no consumer group, nothing committed, so reading changes nothing on the broker.
"""

from __future__ import annotations

import logging
import time

from shared.errors import SlmError
from shared.settings import KafkaSettings

__all__ = ["TopicReadError", "read_topic", "read_topic_or_none"]

logger = logging.getLogger(__name__)


class TopicReadError(SlmError):
    """A topic could not be read to its end in time (the broker is down or too slow)."""


def read_topic(settings: KafkaSettings, topic: str, *, timeout_s: float = 120.0) -> list:
    """:func:`read_topic_or_none` with the services' connection, and none for a missing topic."""
    return read_topic_or_none(settings.client_options(), topic, timeout_s=timeout_s) or []


def read_topic_or_none(options: dict, topic: str, *, timeout_s: float = 120.0) -> list | None:
    """Every record of ``topic`` up to its end offsets taken when the read starts, partition by
    partition in offset order (kafka-python ``ConsumerRecord``); None when the topic does not exist.

    Read ``read_committed``: under exactly-once the services' records belong to transactions, and
    an aborted batch's must not count. ``options`` are kafka-python's connection options
    (:func:`shared.kafka.clients.client_options`, ``KafkaSettings.client_options()``).

    Raises:
        TopicReadError: the end was not reached within ``timeout_s``; a partial read would
            make the caller's counts wrong, so nothing is returned.
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**options, group_id=None, enable_auto_commit=False,
                             isolation_level="read_committed", auto_offset_reset="earliest")
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            logger.info('topic=%s does not exist: no records', topic)
            return None
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        # The end as of now: records published while we read belong to the next read.
        ends = consumer.end_offsets(tps)
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
