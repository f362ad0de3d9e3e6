"""``slm serve <task> --replicas N``: a local Ray cluster on 127.0.0.1 running the task's replicas.

The cluster is private to this command: it starts here, binds to 127.0.0.1 (dashboard off
unless asked) and stops on SIGTERM/SIGINT after Serve has stopped the replicas gracefully.
With ``SLM_RAY_ADDRESS`` the application goes to an existing cluster instead.
"""

from __future__ import annotations

import logging
import signal
import threading

from shared.compat import local_ray_init_options, use_local_ray_env
from shared.kafka.settings import KafkaSettings
from shared.ray_settings import ReplicaSettings
from shared.settings import ServingSettings

__all__ = ["requests_partitions", "serve_replicas", "start_ray"]

logger = logging.getLogger(__name__)


def requests_partitions(task: str, kafka: KafkaSettings) -> int | None:
    """Partitions of ``<task>.requests`` (created as the service would), or None without Kafka."""
    if not kafka.bootstrap:
        return None
    from kafka import KafkaConsumer

    from shared.kafka import TaskTopics
    from shared.kafka.topics import ensure_topics

    topics = TaskTopics(task, kafka.topic_prefix)
    if kafka.create_topics:
        ensure_topics(kafka, topics.all())
    consumer = KafkaConsumer(**kafka.client_options())
    try:
        return len(consumer.partitions_for_topic(topics.requests)) or None
    finally:
        consumer.close()


def start_ray(settings: ReplicaSettings, http_host: str, http_port: int) -> None:
    """Connect to ``settings.address`` or start a local cluster on 127.0.0.1; start Serve's proxy."""
    use_local_ray_env()
    import ray
    from ray import serve

    if settings.address:
        ray.init(address=settings.address, logging_level=logging.WARNING)
    else:
        ray.init(**local_ray_init_options(), include_dashboard=settings.dashboard, dashboard_host="127.0.0.1",
                 logging_level=logging.WARNING)
    serve.start(http_options={"host": http_host, "port": http_port})


def serve_replicas(task: str, host: str, port: int, serving: ServingSettings, settings: ReplicaSettings) -> None:
    """Run the task's replicas, each serving with ``serving``, until SIGTERM or SIGINT, then stop them
    and the cluster."""
    use_local_ray_env()
    import ray
    from ray import serve

    from shared.ray_replicas import task_application

    partitions = requests_partitions(task, serving.kafka)
    start_ray(settings, host, port)
    cpus = ray.cluster_resources().get("CPU", 0)
    wanted = (settings.max_replicas or settings.min_replicas or 1) if settings.autoscaling else settings.num_replicas
    if wanted * settings.cpus_per_replica > cpus:
        logger.warning('%d replicas x %.2g CPU exceed the cluster CPUs=%.0f: some stay pending '
                       '(lower SLM_RAY_CPUS_PER_REPLICA)', wanted, settings.cpus_per_replica, cpus)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        serve.run(task_application(task, serving, settings, partitions),
                  name=task, route_prefix="/", blocking=False)
        logger.info('serving task=%s replicas=%s on http://%s:%d (Ray Serve)', task,
                    f"{settings.min_replicas}-{settings.max_replicas}" if settings.autoscaling
                    else settings.num_replicas, host, port)
        stop.wait()
    finally:
        serve.shutdown()
        ray.shutdown()
