"""A task service as Ray Serve replicas: the same BentoML app, one Kafka consumer per replica.

Each replica builds the task's BentoML service as an ASGI app (``Service.to_asgi()``) and
Ray Serve makes it the deployment's ingress, so routes, OpenAPI, validation and request
batching are the service's own, exactly as under ``bentoml serve``. The app's lifespan creates
the service instance, which starts the task's consumer loop in group ``slm-<task>``: the
topic's partitions spread over the replicas, and a replica that stops finishes and commits
its batch and leaves the group (BentoML's shutdown hook, run by Ray's graceful shutdown).

Two ways in: ``slm serve <task> --replicas N`` (a local cluster, :mod:`slm.replicas`), and
a Serve config file or KubeRay ``RayService`` naming ``shared.ray_replicas:build_app`` with
``args: {task: <task>}``. Not ``bentoml.ray``: it is legacy-only and broken with current Ray.
"""

from __future__ import annotations

import importlib
import logging
import os

from shared.compat import keep_replica_grpc_local
from shared.ray_autoscaling import LAG_METRIC, KafkaLagPolicy
from shared.settings import ReplicaSettings, service_import

__all__ = ["TaskReplica", "build_app", "deployment_options", "forwarded_env", "replica_env", "task_application"]

logger = logging.getLogger(__name__)

# Settings the replicas read from their environment: Ray workers are started by the raylet
# and do not inherit the environment of the process that deploys the application.
FORWARDED_PREFIXES = ("SLM_", "OTEL_")


def forwarded_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_PREFIXES)}


def replica_env(env: dict[str, str], replica_id: str | None = None) -> dict[str, str]:
    """The service's settings for one replica: a static group member id (the pod name) gets the
    replica's id appended, since every replica of a pod runs a consumer of its own."""
    instance = env.get("SLM_KAFKA_GROUP_INSTANCE_ID")
    if not instance:
        return env
    if replica_id is None:
        from ray import serve

        replica_id = serve.get_replica_context().replica_id.unique_id
    return {**env, "SLM_KAFKA_GROUP_INSTANCE_ID": f"{instance}-{replica_id}"[:249]}


class TaskReplica:
    """One replica of a task service (the deployment class, wrapped by ``serve.ingress()``).

    Args:
        task (`str`): task name.
        service (`str`): ``module:Class`` of the BentoML service.
        env (`dict[str, str]`): settings for the service (``SLM_*``), set before it is imported.
    """

    def __init__(self, task: str, service: str, env: dict[str, str]) -> None:
        os.environ.update(replica_env(env))
        keep_replica_grpc_local()
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
        if served.loop is not None and not served.loop.running:
            raise RuntimeError(f"{self.task}: the Kafka consumer loop is not running")

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


def task_application(task: str, env: dict[str, str], settings: ReplicaSettings, partitions: int | None = None):
    """The Serve application for ``serve.run``: one deployment, ``slm-<task>``, ingress at ``/``.

    Args:
        task (`str`): task name.
        env (`dict[str, str]`): the service's settings (``SLM_*``) for the replicas.
        settings (`ReplicaSettings`): replica count or autoscaling bounds, resources.
        partitions (`int | None`): partitions of the requests topic, for the autoscaling policy.
    """
    from ray import serve

    from shared.runtime import open_model_folder
    from shared.settings import default_model_dir

    # Refuse a changed or incomplete model folder here, once, before any replica starts.
    open_model_folder(env.get("SLM_MODEL_DIR") or default_model_dir(task))
    env = {**env, "SLM_ONNX_THREADS": str(settings.onnx_threads)}
    deployment = serve.deployment(serve.ingress()(TaskReplica), name=f"slm-{task}",
                                  **deployment_options(settings, partitions))
    high = settings.max_replicas if settings.autoscaling else settings.num_replicas
    if partitions is not None and high is not None and high > partitions:
        logger.warning('task=%s up to %d replicas for %d partitions: replicas beyond %d get no partition '
                       'and serve REST only', task, high, partitions, partitions)
    return deployment.bind(task, service_import(task), env)


def build_app(args: dict):
    """Application builder for Serve config files (KubeRay ``serveConfigV2``).

    ``args``: ``task`` (required) and ``partitions`` (optional). Settings come from the
    environment (``SLM_*``, ``SLM_RAY_*``); the config's deployment options override the code's.
    """
    task = args.get("task")
    if not task:
        raise ValueError("build_app needs args.task (transactions, entities, helpdesk or sentiment)")
    partitions = args.get("partitions")
    return task_application(task, forwarded_env(), ReplicaSettings(), int(partitions) if partitions else None)
