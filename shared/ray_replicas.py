"""A task service as Ray Serve replicas: the same BentoML app, one Kafka consumer per replica.

Each replica builds the task's BentoML service as an ASGI app (``Service.to_asgi()``) and
Ray Serve makes it the deployment's ingress, so routes, OpenAPI, validation and request
batching are the service's own, exactly as under ``bentoml serve``. The app's lifespan creates
the service instance, which starts the task's consumer loop in group ``slm-<task>``: the
topic's partitions spread over the replicas, and a replica that stops finishes and commits
its batch and leaves the group (BentoML's shutdown hook, run by Ray's graceful shutdown).

Two ways in: ``slm serve <task> --replicas N`` (a local cluster, :mod:`shared.ray_local`), and
a Serve config file or KubeRay ``RayService`` naming ``shared.ray_replicas:build_app`` with
``args: {task: <task>}`` (:class:`AppArgs`). Either way the settings are read and validated once,
where the application is built, and bound to the deployment: each replica gets the
:class:`shared.settings.ServingSettings` object, not an environment to read them from. Not
``bentoml.ray``: it is legacy-only and broken with current Ray.
"""

# No ``from __future__ import annotations``: Ray reads build_app's annotation to validate its args.

import importlib
import logging
import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.compat import keep_replica_grpc_local
from shared.ray_autoscaling import LAG_METRIC, KafkaLagPolicy
from shared.ray_settings import ReplicaSettings
from shared.settings import ServingSettings, service_import, warn_unknown_settings
from shared.task_kinds import TASKS

__all__ = ["AppArgs", "TaskReplica", "build_app", "deployment_options", "task_application", "telemetry_env"]

logger = logging.getLogger(__name__)

# OpenTelemetry reads its configuration (OTEL_*) from the environment of the process it runs in:
# the replicas' processes get it through Ray's runtime environment.
TELEMETRY_PREFIX = "OTEL_"


def telemetry_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``OTEL_*`` variables of ``environ`` (default: this process's environment)."""
    environ = os.environ if environ is None else environ
    return {k: v for k, v in environ.items() if k.startswith(TELEMETRY_PREFIX)}


class TaskReplica:
    """One replica of a task service (the deployment class, wrapped by ``serve.ingress()``).

    Args:
        task (`str`): task name.
        service (`str`): ``module:Class`` of the BentoML service.
        settings (`ServingSettings`): the service's settings, given to it before its module is imported.
    """

    def __init__(self, task: str, service: str, settings: ServingSettings) -> None:
        from ray import serve

        from shared.bento import use_settings

        keep_replica_grpc_local()
        use_settings(settings.for_replica(serve.get_replica_context().replica_id.unique_id))
        self.task = task
        self.service = service

    def __serve_build_asgi_app__(self):
        module, name = self.service.split(":")
        service = getattr(importlib.import_module(module), name)
        return service.to_asgi()

    def _served(self):
        from shared.serving import served_task

        return served_task(self.task)

    def check_health(self) -> None:
        """Ray Serve restarts a replica whose consumer thread has died."""
        served = self._served()
        if served is None:
            raise RuntimeError(f"{self.task}: the service has not started")
        if not served.is_alive():
            raise RuntimeError(f"{self.task}: the Kafka consumer loop is fenced or stuck")

    def record_autoscaling_stats(self) -> dict[str, float]:
        """This replica's consumer lag, for :class:`shared.ray_autoscaling.KafkaLagPolicy`."""
        served = self._served()
        loop = served.loop if served is not None else None
        return {LAG_METRIC: float(loop.lag if loop is not None else 0)}


def deployment_options(settings: ReplicaSettings, partitions: int | None) -> dict:
    """``serve.deployment`` options: replica count or autoscaling, resources, graceful shutdown."""
    options: dict = {
        "ray_actor_options": {"num_cpus": settings.cpus_per_replica, "num_gpus": settings.gpus_per_replica},
        "graceful_shutdown_timeout_s": settings.graceful_shutdown_s,
        "health_check_period_s": 10,
    }
    if not settings.autoscaling:
        options["num_replicas"] = settings.num_replicas
        return options
    from ray.serve.config import AutoscalingConfig, AutoscalingPolicy

    low = settings.min_replicas if settings.min_replicas is not None else 1
    high = settings.max_replicas if settings.max_replicas is not None else max(low, 1)
    options["autoscaling_config"] = AutoscalingConfig(
        min_replicas=low, max_replicas=high, initial_replicas=max(low, 1),
        target_ongoing_requests=settings.target_ongoing_requests,
        upscale_delay_s=settings.upscale_delay_s, downscale_delay_s=settings.downscale_delay_s,
        look_back_period_s=15,
        policy=AutoscalingPolicy(policy_function=KafkaLagPolicy, policy_kwargs={
            "target_lag_per_replica": settings.target_lag_per_replica, "partitions": partitions}),
    )
    return options


def task_application(task: str, settings: ServingSettings, replicas: ReplicaSettings, partitions: int | None = None,
                     process_env: Mapping[str, str] | None = None):
    """The Serve application for ``serve.run``: one deployment, ``slm-<task>``, ingress at ``/``.

    Args:
        task (`str`): task name.
        settings (`ServingSettings`): the service's settings, bound to every replica.
        replicas (`ReplicaSettings`): replica count or autoscaling bounds, resources.
        partitions (`int | None`): partitions of the requests topic, for the autoscaling policy.
        process_env (`Mapping[str, str] | None`): environment of the replica processes for the libraries
            configured by it (OpenTelemetry); defaults to this process's ``OTEL_*``.
    """
    from ray import serve

    from shared.runtime import open_model_folder

    # Refuse a changed or incomplete model folder here, once, before any replica starts.
    model_dir = settings.model_dir(task)
    open_model_folder(model_dir)
    settings = settings.replace(service={"model_dir": model_dir, "onnx_threads": replicas.onnx_threads})
    options = deployment_options(replicas, partitions)
    env = telemetry_env() if process_env is None else dict(process_env)
    if env:
        options["ray_actor_options"]["runtime_env"] = {"env_vars": env}
    deployment = serve.deployment(serve.ingress()(TaskReplica), name=f"slm-{task}", **options)
    high = replicas.max_replicas if replicas.autoscaling else replicas.num_replicas
    if partitions is not None and high is not None and high > partitions:
        logger.warning('task=%s up to %d replicas for %d partitions: replicas beyond %d get no partition '
                       'and serve REST only', task, high, partitions, partitions)
    return deployment.bind(task, service_import(task), settings)


class AppArgs(BaseModel):
    """``args`` of the application in a Serve config file (KubeRay ``serveConfigV2``).

    Args:
        task (`str`): the task to serve.
        partitions (`int | None`): partitions of its requests topic, for the autoscaling policy.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str
    partitions: int | None = Field(default=None, ge=1)

    @field_validator("task")
    @classmethod
    def _known_task(cls, task: str) -> str:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
        return task


def build_app(args: AppArgs):
    """Application builder for Serve config files: Ray validates ``args`` into :class:`AppArgs`.

    The settings (``SLM_*``, ``SLM_RAY_*``) are read from this process's environment once, here; the
    config's deployment options override the code's.
    """
    from shared.kafka.preflight import check_credentials

    args = AppArgs.model_validate(args)
    warn_unknown_settings()
    settings = ServingSettings.from_env()
    check_credentials(settings.kafka)  # a refused credential fails the deployment with one line
    return task_application(args.task, settings, ReplicaSettings(), args.partitions)
