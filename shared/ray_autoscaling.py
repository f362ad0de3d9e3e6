"""Ray Serve autoscaling on REST load and Kafka consumer lag, for the task deployments.

Ray Serve's own policy only sees requests that pass through Serve (REST). Most of a task
service's work arrives on Kafka, which Serve never sees, so each replica reports its
consumer lag (``record_autoscaling_stats``) and this policy asks for the larger of:

- the REST part: ongoing requests / ``target_ongoing_requests`` (Ray Serve's default rule);
- the Kafka part: total lag / ``target_lag_per_replica``, capped at the topic's partition
  count, because a replica beyond it gets no partition and cannot lower the lag.

Ray Serve applies ``min_replicas``/``max_replicas`` and the up/down-scale delays around it.
Ray pickles this module by value into its controller: it imports nothing from the project.
"""

from __future__ import annotations

import logging
import math

__all__ = ["KafkaLagPolicy", "LAG_METRIC", "desired_replicas"]

LAG_METRIC = "kafka_lag"

logger = logging.getLogger("ray.serve")


def desired_replicas(*, ongoing_requests: float, target_ongoing_requests: float, lag: float,
                     target_lag_per_replica: int, partitions: int | None) -> tuple[int, str]:
    """Replicas wanted for this REST load and Kafka lag, and which part decided it."""
    by_load = math.ceil(ongoing_requests / target_ongoing_requests) if ongoing_requests > 0 else 0
    by_lag = 0
    if target_lag_per_replica > 0 and lag > 0:
        by_lag = math.ceil(lag / target_lag_per_replica)
        if partitions is not None:
            by_lag = min(by_lag, partitions)
    wanted = max(by_load, by_lag, 1)
    return wanted, ("kafka lag" if by_lag > by_load else "rest load")


class KafkaLagPolicy:
    """``AutoscalingPolicy(policy_function=KafkaLagPolicy, policy_kwargs={...})``.

    Args:
        target_lag_per_replica (`int`): records behind per replica to aim for (0: lag ignored).
        partitions (`int | None`): partitions of the requests topic, the useful maximum for Kafka.
    """

    def __init__(self, target_lag_per_replica: int = 1000, partitions: int | None = None) -> None:
        self.target_lag_per_replica = target_lag_per_replica
        self.partitions = partitions
        self._last: tuple[int, str] | None = None

    def __call__(self, ctx) -> tuple[int, dict]:
        per_replica = (ctx.aggregated_metrics or {}).get(LAG_METRIC, {})
        lag = float(sum(per_replica.values()))
        wanted, reason = desired_replicas(
            ongoing_requests=float(ctx.total_num_requests),
            target_ongoing_requests=ctx.config.get_target_ongoing_requests(),
            lag=lag, target_lag_per_replica=self.target_lag_per_replica, partitions=self.partitions)
        if (wanted, reason) != self._last and wanted != ctx.current_num_replicas:
            logger.info("deployment=%s replicas=%d wants=%d by %s (lag=%.0f ongoing=%.1f)", ctx.deployment_name,
                        ctx.current_num_replicas, wanted, reason, lag, ctx.total_num_requests)
            if self.partitions is not None and wanted > self.partitions:
                logger.warning("deployment=%s: %d replicas for %d partitions; the extra ones serve REST only",
                               ctx.deployment_name, wanted, self.partitions)
        self._last = (wanted, reason)
        return wanted, {}
