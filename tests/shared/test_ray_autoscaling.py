"""The replicas' autoscaling rule and deployment options, without a Ray cluster."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from shared.ray_autoscaling import LAG_METRIC, KafkaLagPolicy, desired_replicas
from shared.ray_replicas import deployment_options
from shared.ray_settings import ReplicaSettings


def _ctx(*, ongoing: float, lag_by_replica: dict, replicas: int = 1, target_ongoing: float = 2.0):
    config = SimpleNamespace(get_target_ongoing_requests=lambda: target_ongoing)
    return SimpleNamespace(aggregated_metrics={LAG_METRIC: lag_by_replica}, total_num_requests=ongoing,
                           config=config, current_num_replicas=replicas, deployment_name="slm-sentiment")


@pytest.mark.parametrize(("ongoing", "lag", "partitions", "expected"), [
    (0, 0, 4, (1, "rest load")),          # idle: one replica, never zero from this rule
    (7, 0, 4, (4, "rest load")),          # 7 ongoing / 2 per replica
    (1, 2500, 4, (3, "kafka lag")),       # 2500 behind / 1000 per replica
    (1, 90_000, 4, (4, "kafka lag")),     # capped at the partitions: a 5th replica gets none
    (20, 90_000, 4, (10, "rest load")),   # REST load may go past the partitions
    (1, 90_000, None, (90, "kafka lag")),
])
def test_desired_replicas_takes_the_larger_of_load_and_lag(ongoing, lag, partitions, expected):
    assert desired_replicas(ongoing_requests=ongoing, target_ongoing_requests=2, lag=lag,
                            target_lag_per_replica=1000, partitions=partitions) == expected


def test_lag_part_can_be_turned_off():
    assert desired_replicas(ongoing_requests=0, target_ongoing_requests=2, lag=10**6,
                            target_lag_per_replica=0, partitions=4) == (1, "rest load")


def test_policy_sums_the_replicas_lag_and_says_when_it_passes_the_partitions(caplog):
    policy = KafkaLagPolicy(target_lag_per_replica=100, partitions=2)
    assert policy(_ctx(ongoing=0, lag_by_replica={"r1": 150.0, "r2": 120.0})) == (2, {})
    with caplog.at_level(logging.INFO, logger="ray.serve"):
        assert policy(_ctx(ongoing=9, lag_by_replica={"r1": 0.0}, replicas=2)) == (5, {})
    assert "5 replicas for 2 partitions" in caplog.text


def test_fixed_replicas_and_resources():
    options = deployment_options(ReplicaSettings(num_replicas=3, cpus_per_replica=2, gpus_per_replica=0.5), 4)
    assert options["num_replicas"] == 3
    assert options["ray_actor_options"] == {"num_cpus": 2, "num_gpus": 0.5}
    assert "autoscaling_config" not in options
    assert ReplicaSettings(cpus_per_replica=2.5).onnx_threads == 2
    assert ReplicaSettings(cpus_per_replica=0.5).onnx_threads == 1


def test_autoscaling_options_carry_the_policy_and_bounds():
    options = deployment_options(ReplicaSettings(min_replicas=1, max_replicas=4, target_ongoing_requests=3,
                                                 target_lag_per_replica=500), partitions=4)
    assert "num_replicas" not in options
    config = options["autoscaling_config"]
    assert (config.min_replicas, config.max_replicas, config.target_ongoing_requests) == (1, 4, 3)
    assert config.policy.policy_kwargs == {"target_lag_per_replica": 500, "partitions": 4}
    policy = config.policy.get_policy()
    assert policy.__name__ == "KafkaLagPolicy"
