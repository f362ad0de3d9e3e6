"""What a consumer loop knows of its own health: broker contact, its poll loop coming round, rebalances.

Readiness is REST's: by default a broker outage leaves the loop ready (with ``unready_after_s``
above 0 readiness follows the broker, checked every ``health_interval_s`` when idle); liveness
fails when only a restart helps (the loop stuck past ``stuck_after_s``). The seconds since the
broker last answered are a metric, and an outage is one log line when it starts and one when it
ends. A rebalance that has not finished after ``rebalance_stall_s`` raises
:class:`RebalanceStalled`, and the loop rebuilds its clients instead of staying deaf to its topic.

One clock (``clock``, monotonic seconds) times all of it, so a test can move it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from shared.errors import RebalanceStalled
from shared.kafka.settings import KafkaSettings

__all__ = ["LoopHealth"]

logger = logging.getLogger(__name__)


class LoopHealth:
    """The times a consumer loop's probes, metrics and watchdogs read.

    Args:
        settings (`KafkaSettings`): ``unready_after_s``, ``stuck_after_s``, ``health_interval_s``,
            ``rebalance_stall_s``.
        task (`str`): the task, for log lines.
        group_id (`str`): the consumer group, for the stalled-rebalance error.
        clock (`Callable[[], float]`, defaults to `time.monotonic`): seconds, for durations only.
    """

    def __init__(self, settings: KafkaSettings, task: str, group_id: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.task = task
        self.group_id = group_id
        self.clock = clock
        self.started_at: float | None = None
        self.last_contact: float | None = None  # when the broker last answered the loop
        self.last_iteration: float | None = None  # when the poll loop last came round
        self.rebalancing_since: float | None = None
        self._last_check = float("-inf")
        self._outage_reported = False

    def started(self) -> None:
        self.started_at = self.clock()

    def came_round(self) -> None:
        """The poll loop came round (or is about to block in a call that may hang)."""
        self.last_iteration = self.clock()

    def stuck(self) -> bool:
        """The poll loop has not come round for ``stuck_after_s``: stuck in a call."""
        last = self.last_iteration
        return last is not None and self.clock() - last > self.settings.stuck_after_s

    # -- the broker ---------------------------------------------------------------------------

    def contact(self) -> None:
        """The broker answered (a poll, a commit, a health check)."""
        if self._outage_reported or (self.last_contact is not None and not self.broker_reachable()):
            logger.warning('broker reachable again task=%s', self.task)
        self._outage_reported = False
        self.last_contact = self.clock()

    def report_outage(self, exc: BaseException) -> None:
        """One log line per outage (the first failure), however long it lasts."""
        if not self._outage_reported:
            self._outage_reported = True
            logger.warning('broker unreachable task=%s error="%s: %s"', self.task, type(exc).__name__, exc)

    def seconds_since_contact(self) -> float | None:
        """Seconds since the broker last answered the loop; None before the first answer."""
        last = self.last_contact
        return None if last is None else self.clock() - last

    def seconds_silent(self) -> float | None:
        """Seconds since the broker last answered the loop or, before its first answer, since the
        loop started (a broker down from the start is silence too); None before the start."""
        last = self.last_contact if self.last_contact is not None else self.started_at
        return None if last is None else self.clock() - last

    def broker_reachable(self) -> bool:
        """Whether the broker answered the loop within the last ``unready_after_s``."""
        if not self.settings.unready_after_s:
            return True
        last = self.last_contact
        return last is not None and self.clock() - last <= self.settings.unready_after_s

    def check_broker(self, consumer, requests_topic: str) -> None:
        """Every ``health_interval_s`` while idle: one bounded round trip to the broker (the end
        offsets of the assignment, or of partition 0), so readiness knows whether it is there."""
        from kafka import TopicPartition

        now = self.clock()
        if now - self._last_check < self.settings.health_interval_s:
            return
        self._last_check = now
        partitions = list(consumer.assignment()) or [TopicPartition(requests_topic, 0)]
        timeout_ms = int(min(self.settings.health_interval_s, 5.0) * 1000)
        try:
            consumer.end_offsets(partitions, timeout_ms=timeout_ms)
        except Exception as exc:  # noqa: BLE001 - reported through readiness and this line
            self.report_outage(exc)
            return
        self.contact()

    # -- rebalances ---------------------------------------------------------------------------

    def rebalance_started(self) -> None:
        self.rebalancing_since = self.clock()

    def rebalance_over(self) -> None:
        """Assigned; or the clients are rebuilt, and their group join is timed afresh."""
        self.rebalancing_since = None

    def check_rebalance(self) -> None:
        """Raise :class:`RebalanceStalled` when a rebalance has lasted past ``rebalance_stall_s``."""
        since = self.rebalancing_since
        if since is not None and self.clock() - since > self.settings.rebalance_stall_s:
            raise RebalanceStalled(f"group {self.group_id}: no assignment {self.clock() - since:.0f}s after "
                                   f"the partitions were revoked (rebalance_stall_s="
                                   f"{self.settings.rebalance_stall_s:.0f})")
