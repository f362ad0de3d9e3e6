"""What a shadow consumer loop may publish: the one filter of its outgoing records.

A shadow (``SLM_KAFKA_SHADOW``, :class:`shared.kafka.topics.TaskTopics` with ``shadow=True``) plans
each batch as the primary does, so its counts (results, review, DLQ) say what its model decided;
only its results reach the broker, on ``<task>.shadow.results``. A review copy or a dead letter is
the primary's business: the primary, reading the same requests, produces it. A dropped dead letter
is logged by its coordinates and error type, never with the request's value.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from shared.kafka.outgoing import OutgoingRecord
from shared.kafka.topics import TaskTopics

__all__ = ["own_records"]

logger = logging.getLogger(__name__)


def own_records(outgoing: Sequence[OutgoingRecord], topics: TaskTopics) -> list[OutgoingRecord]:
    """The records of ``outgoing`` this instance publishes (every one, for a primary), in order."""
    if not topics.shadow:
        return list(outgoing)
    kept = []
    for out in outgoing:
        if out.topic in topics.produced:
            kept.append(out)
        elif out.topic == topics.dlq:
            headers = dict(out.headers)
            error_type = headers.get("error.type", b"unknown").decode("utf-8", "replace")
            topic, partition, offset = out.source
            logger.info('shadow does not dead-letter (the primary does) task=%s source=%s[%d]@%d error_type=%s',
                        topics.task, topic, partition, offset, error_type)
    return kept
