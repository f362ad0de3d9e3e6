"""``slm drift``: how far a task's last results on Kafka have moved from its model's drift reference.

The results topic carries each answer's label and score, not the request's text, so the command
reports the ``label`` and ``score`` features; text length is the service's gauge only
(``slm.drift.psi``, :mod:`shared.drift`). Reading changes nothing on the broker: no consumer
group, nothing committed, the connection options are the services' own.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field

from shared.drift import DriftReference, answer_features
from shared.errors import SlmError
from shared.settings import KafkaSettings

__all__ = ["DriftReport", "LastRecordsError", "drift_report", "read_last_records", "verdict"]

logger = logging.getLogger(__name__)


class LastRecordsError(SlmError):
    """The end of a topic was not reached in time (the broker is down or too slow)."""


def read_last_records(settings: KafkaSettings, topic: str, count: int, *, timeout_s: float = 60.0) -> list:
    """The last ``count`` records of ``topic`` as of now, oldest first (kafka-python ``ConsumerRecord``s).

    Each partition is read from ``count`` records before its end; the records of all partitions are
    ordered by timestamp and the last ``count`` kept. Read ``read_committed``, as a downstream reader
    of exactly-once output must. A topic that does not exist has none.

    Raises:
        LastRecordsError: the ends were not reached within ``timeout_s``.
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**settings.client_options(), group_id=None, enable_auto_commit=False,
                             isolation_level="read_committed", auto_offset_reset="earliest",
                             allow_auto_create_topics=False)
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            logger.info('topic=%s does not exist: no records', topic)
            return []
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        begins, ends = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, max(begins[tp], ends[tp] - count))
        records: list = []
        deadline = time.monotonic() + timeout_s
        pending = [tp for tp in tps if consumer.position(tp) < ends[tp]]
        while pending:
            if time.monotonic() > deadline:
                behind = {tp.partition: ends[tp] - consumer.position(tp) for tp in pending}
                raise LastRecordsError(f"topic {topic!r} not read to its end in {timeout_s:.0f}s "
                                       f"(records left by partition: {behind})")
            for tp, batch in consumer.poll(timeout_ms=500).items():
                records.extend(r for r in batch if r.offset < ends[tp])
            pending = [tp for tp in pending if consumer.position(tp) < ends[tp]]
    finally:
        consumer.close()
    records.sort(key=lambda r: (r.timestamp, r.partition, r.offset))
    return records[-count:] if count else []


def verdict(value: float) -> str:
    """The usual reading of a PSI value."""
    if value < 0.1:
        return "no shift"
    if value <= 0.25:
        return "moderate shift"
    return "large shift"


@dataclass(frozen=True)
class DriftReport:
    """PSI of a model's results among the records read, against its reference.

    Args:
        model (`str`): the reference's model id; only its results count.
        read (`int`): records read.
        used (`int`): results of ``model`` among them.
        other_models (`dict[str, int]`): results of other models (another version still running), by id.
        unreadable (`int`): records that were not a result (not JSON, no label or entities).
        psi (`dict[str, float]`): ``label``, ``score`` and ``max``; empty when no result counted.
    """

    model: str
    read: int
    used: int
    other_models: dict[str, int] = field(default_factory=dict)
    unreadable: int = 0
    psi: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"model": self.model, "read": self.read, "used": self.used, "other_models": self.other_models,
                "unreadable": self.unreadable, "psi": self.psi}


def drift_report(reference: DriftReference, values: list[bytes | None]) -> DriftReport:
    """PSI of the results among ``values`` (record values, JSON) that ``reference``'s model gave."""
    answers, others, unreadable = [], Counter(), 0
    for value in values:
        try:
            result = json.loads(value) if value is not None else None
        except (ValueError, UnicodeDecodeError):
            result = None
        features = answer_features(result) if isinstance(result, dict) else None
        if features is None:
            unreadable += 1
        elif result.get("model") != reference.model:
            others[str(result.get("model"))] += 1
        else:
            answers.append(features)
    counts = reference.counts_of(answers)
    return DriftReport(reference.model, len(values), len(answers), dict(others), unreadable,
                       reference.psi_of({name: counts[name] for name in ("label", "score")}))
