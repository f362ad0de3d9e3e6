"""Topic names of a task and their creation on demand."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from shared.settings import KafkaSettings

__all__ = ["TaskTopics", "ensure_topics"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskTopics:
    """``<task>.requests / .results / .review / .dlq`` and the consumer group ``slm-<task>``.

    A ``prefix`` (``SLM_KAFKA_TOPIC_PREFIX``, e.g. ``"team-a."``) lets several installations
    or test runs share one cluster.
    """

    task: str
    prefix: str = ""

    @property
    def requests(self) -> str:
        return f"{self.prefix}{self.task}.requests"

    @property
    def results(self) -> str:
        return f"{self.prefix}{self.task}.results"

    @property
    def review(self) -> str:
        return f"{self.prefix}{self.task}.review"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}{self.task}.dlq"

    @property
    def group(self) -> str:
        return f"slm-{self.task}"

    def all(self) -> list[str]:
        return [self.requests, self.results, self.review, self.dlq]


def ensure_topics(settings: KafkaSettings, topics: list[str]) -> list[str]:
    """Create the topics that do not exist yet; returns the names created."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(**settings.client_options())
    try:
        existing = set(admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if not missing:
            return []
        new = [NewTopic(t, num_partitions=settings.partitions, replication_factor=settings.replication_factor)
               for t in missing]
        try:
            admin.create_topics(new)
        except TopicAlreadyExistsError:
            pass  # another replica created them first
        logger.info('created topics=%s partitions=%d', ",".join(missing), settings.partitions)
        return missing
    finally:
        admin.close()
