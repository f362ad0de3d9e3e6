"""Ray Serve replica settings of a task service (env prefix ``SLM_RAY_``; ``slm serve --replicas``).

One of the product's settings classes (:data:`shared.settings.SETTINGS_CLASSES`); read where the Ray
application is built (:mod:`shared.ray_replicas`, :mod:`shared.ray_local`).
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ReplicaSettings"]


class ReplicaSettings(BaseSettings):
    """Ray Serve replicas of one task service (env prefix ``SLM_RAY_``; ``slm serve --replicas``).

    Args:
        num_replicas (`int`, defaults to `1`): fixed replica count, used when autoscaling is off.
        min_replicas / max_replicas (`int | None`): set both to autoscale between them.
        target_ongoing_requests (`float`, defaults to `2`): REST requests in flight per replica
            that Ray Serve's autoscaler aims for.
        target_lag_per_replica (`int`, defaults to `1000`): Kafka records behind per replica that
            the lag part of the autoscaling policy aims for; 0 turns the lag part off.
        upscale_delay_s / downscale_delay_s (`float`): how long a decision must hold before acting.
        cpus_per_replica (`float`, defaults to `1`): the replica's Ray CPU request; ONNX Runtime
            gets ``max(1, floor(cpus))`` intra-op threads, so N replicas fit N x cpus cores.
        gpus_per_replica (`float`, defaults to `0`): the replica's Ray GPU request.
        graceful_shutdown_s (`float`, defaults to `30`): time a stopping replica has to finish and
            commit its batch and leave the consumer group.
        address (`str | None`): an existing Ray cluster (``ray://`` or ``host:port``); unset starts
            a local one bound to 127.0.0.1.
        dashboard (`bool`, defaults to `False`): start Ray's dashboard with the local cluster.
    """

    model_config = SettingsConfigDict(env_prefix="SLM_RAY_", frozen=True, extra="ignore")

    num_replicas: int = Field(default=1, ge=1)
    min_replicas: int | None = Field(default=None, ge=0)
    max_replicas: int | None = Field(default=None, ge=1)
    target_ongoing_requests: float = Field(default=2.0, gt=0)
    target_lag_per_replica: int = Field(default=1000, ge=0)
    upscale_delay_s: float = Field(default=10.0, ge=0)
    downscale_delay_s: float = Field(default=60.0, ge=0)
    cpus_per_replica: float = Field(default=1.0, gt=0)
    gpus_per_replica: float = Field(default=0.0, ge=0)
    graceful_shutdown_s: float = Field(default=30.0, gt=0)
    address: str | None = None
    dashboard: bool = False

    @property
    def autoscaling(self) -> bool:
        return self.min_replicas is not None or self.max_replicas is not None

    @property
    def onnx_threads(self) -> int:
        """Intra-op threads per replica: its CPU request, so replicas never oversubscribe cores."""
        return max(1, int(self.cpus_per_replica))
