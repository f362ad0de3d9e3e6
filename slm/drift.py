"""``slm drift``: how far a task's last results on Kafka have moved from its model's drift reference.

The results topic carries each answer's label and score, not the request's text, so the command
reports the ``label`` and ``score`` features; text length is the service's gauge only
(``slm.drift.psi``, :mod:`shared.drift`). Reading changes nothing on the broker: no consumer
group, nothing committed, the connection options are the services' own.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from shared.drift import DriftReference, answer_features
from shared.kafka.topic_reader import NotAJsonObject, json_object, read_topic
from shared.settings import KafkaSettings

__all__ = ["DriftReport", "drift_report", "read_last_records", "verdict"]


def read_last_records(settings: KafkaSettings, topic: str, count: int, *, timeout_s: float = 60.0) -> list:
    """The last ``count`` records of ``topic`` as of now, oldest first (kafka-python ``ConsumerRecord``s).

    Each partition is read from ``count`` offsets before its end (:func:`read_topic`, ``read_committed``);
    the records of all partitions are ordered by timestamp and the last ``count`` kept. Under exactly-once,
    transaction markers take offsets too, so a partition can give fewer: with one partition, the last
    ``count`` offsets hold fewer than ``count`` results. A topic that does not exist has none.

    Raises:
        TopicReadError: the ends were not reached within ``timeout_s``.
    """
    records = read_topic(settings, topic, timeout_s=timeout_s, last=count)
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
            result = json_object(value)
        except NotAJsonObject:
            result = None
        features = answer_features(result) if result is not None else None
        if features is None:
            unreadable += 1
        elif result.get("model") != reference.model:
            others[str(result.get("model"))] += 1
        else:
            answers.append(features)
    counts = reference.counts_of(answers)
    return DriftReport(reference.model, len(values), len(answers), dict(others), unreadable,
                       reference.psi_of({name: counts[name] for name in ("label", "score")}))
