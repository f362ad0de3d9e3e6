"""Topic names of a task and their creation on demand."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from shared.errors import ConfigError
from shared.kafka.settings import SHADOW_SUFFIX, KafkaSettings

__all__ = ["SHADOW_SUFFIX", "TaskTopics", "TopicConfigUnknown", "ensure_topics", "topic_retention"]

logger = logging.getLogger(__name__)


class _TaskTopic:
    """One topic of a task, ``<prefix><task>.<suffix>``, read as an attribute of :class:`TaskTopics`."""

    def __init__(self, suffix: str) -> None:
        self.suffix = suffix

    def __get__(self, topics: TaskTopics | None, owner: type | None = None):
        if topics is None:
            return self
        return f"{topics.prefix}{topics.task}.{self.suffix}"


@dataclass(frozen=True)
class TaskTopics:
    """``<task>.requests / .results / .review / .dlq / .feedback`` and the consumer group ``slm-<task>``.

    ``<task>.feedback`` is written by reviewers (``{"id", "label"}``) and read by ``slm feedback export``;
    the primary only creates it, so any client can publish to it.

    A ``prefix`` (``SLM_KAFKA_TOPIC_PREFIX``, e.g. ``"team-a."``) lets several installations
    or test runs share one cluster.

    A ``shadow`` (``SLM_KAFKA_SHADOW``: a second model version beside the primary) reads the same
    ``<task>.requests`` in its own group ``slm-<task>-shadow``; its results go to
    ``<task>.shadow.results`` and it produces nothing else (:attr:`produced`): review copies and
    dead letters are the primary's business.
    """

    task: str
    prefix: str = ""
    shadow: bool = False

    @classmethod
    def of(cls, task: str, settings: KafkaSettings) -> TaskTopics:
        """The topics of ``task`` as ``settings`` name them (prefix, shadow)."""
        return cls(task, settings.topic_prefix, shadow=settings.shadow)

    requests = _TaskTopic("requests")
    primary_results = _TaskTopic("results")
    shadow_results = _TaskTopic("shadow.results")
    review = _TaskTopic("review")
    dlq = _TaskTopic("dlq")
    feedback = _TaskTopic("feedback")

    @property
    def results(self) -> str:
        """``<task>.results``, or ``<task>.shadow.results`` for a shadow."""
        return self.shadow_results if self.shadow else self.primary_results

    @property
    def group(self) -> str:
        return f"slm-{self.task}{SHADOW_SUFFIX}" if self.shadow else f"slm-{self.task}"

    @property
    def produced(self) -> frozenset[str]:
        """The topics this instance writes to: a shadow only its results."""
        if self.shadow:
            return frozenset({self.results})
        return frozenset({self.results, self.review, self.dlq})

    def consumer_group(self, configured: str | None) -> str:
        """The group to consume in: ``configured`` (``SLM_KAFKA_GROUP_ID``), else :attr:`group`.

        Raises:
            ConfigError: a shadow configured into a group whose name does not end in ``-shadow``.
                Whatever group the primary uses (``slm-<task>``, the chart's ``kafka.groupId``, a
                prefixed one), a shadow that joined it would take partitions, and so requests,
                away from it; the primary's group inherited through the environment is the usual
                way there. The suffix is the one rule that holds for every primary's group, as the
                chart names the shadow's ``<kafka.groupId>-shadow``.
        """
        group = configured or self.group
        if self.shadow and not group.endswith(SHADOW_SUFFIX):
            raise ConfigError(f"SLM_KAFKA_GROUP_ID={group!r} does not end in {SHADOW_SUFFIX!r}: a shadow "
                              f"(SLM_KAFKA_SHADOW) in another group, such as the primary's, would take requests "
                              f"away from it; unset it for {self.group!r} or name the shadow's own group "
                              f"<primary's group>{SHADOW_SUFFIX}")
        return group

    def all(self) -> list[str]:
        """The topics to create on demand: the requests, what this instance produces and, for a primary,
        the reviewers' feedback topic."""
        if self.shadow:
            return [self.requests, self.results]
        return [self.requests, self.results, self.review, self.dlq, self.feedback]


@contextmanager
def _admin(settings: KafkaSettings) -> Iterator:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(**settings.client_options())
    try:
        yield admin
    finally:
        admin.close()


def ensure_topics(settings: KafkaSettings, topics: list[str]) -> list[str]:
    """Create the topics that do not exist yet; returns the names created."""
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    with _admin(settings) as admin:
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


class TopicConfigUnknown(LookupError):
    """The broker described none of a topic's configuration: it has no such topic, or refuses this principal
    DescribeConfigs on it (kafka-python does not tell the two apart)."""


def topic_retention(settings: KafkaSettings, topic: str) -> timedelta | None:
    """How long ``topic`` keeps a record: its ``retention.ms``, or ``None`` when it deletes none by age
    (``-1``, a time beyond any calendar, or compaction alone).

    Raises:
        TopicConfigUnknown: no such topic, or DescribeConfigs on it is not allowed.
        KafkaError: the broker did not answer.
    """
    from kafka.admin import ConfigResource, ConfigResourceType

    wanted = {"retention.ms": None, "cleanup.policy": None}
    with _admin(settings) as admin:
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic, wanted)],
                                           config_filter="all")
    configs = described.get("topic", {}).get(topic, {})
    if "cleanup.policy" not in configs or "retention.ms" not in configs:
        raise TopicConfigUnknown(f"the broker described no retention of {topic}: the topic is absent, or "
                                 f"DescribeConfigs on it is not allowed")
    policies = {policy.strip() for policy in str(configs["cleanup.policy"]["value"]).split(",")}
    milliseconds = int(configs["retention.ms"]["value"])
    if "delete" not in policies or milliseconds < 0:
        return None
    try:
        return timedelta(milliseconds=milliseconds)
    except OverflowError:  # Long.MAX_VALUE and the like: kept for ever
        return None
