"""``slm serve``: one task's BentoML service, or the same service as Ray Serve replicas."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from shared.console import clean_errors, validated
from shared.errors import ConfigError
from shared.task_kinds import TASKS

__all__ = ["serve"]

@click.command()
@click.argument("task", type=click.Choice(TASKS))
@click.option("--port", type=int, default=3000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--model", "model_dir", type=click.Path(path_type=Path), default=None, help="Model folder.")
@click.option("--kafka", "bootstrap", default=None, help="Kafka bootstrap servers; also SLM_KAFKA_BOOTSTRAP.")
@click.option("--delivery", type=click.Choice(["at_least_once", "exactly_once"]), default=None,
              help="Kafka delivery (SLM_KAFKA_DELIVERY, default at_least_once); exactly_once: one transaction "
                   "per micro-batch, readers of the results read read_committed.")
@click.option("--shadow", is_flag=True, default=None,
              help="Serve the model as a shadow of the task's primary (SLM_KAFKA_SHADOW): consume the same requests "
                   "in group slm-<task>-shadow, publish to <task>.shadow.results only, refuse REST with 503.")
@click.option("--replicas", type=click.IntRange(min=1), default=None,
              help="Run as this many Ray Serve replicas on a local Ray cluster (SLM_RAY_NUM_REPLICAS).")
@click.option("--min-replicas", type=click.IntRange(min=0), default=None, help="Autoscale from (Ray Serve).")
@click.option("--max-replicas", type=click.IntRange(min=1), default=None, help="Autoscale up to (Ray Serve).")
@click.option("--cpus-per-replica", type=float, default=None,
              help="Ray CPU request per replica; ONNX Runtime threads follow it (default 1).")
@clean_errors
def serve(task: str, port: int, host: str, model_dir: Path | None, bootstrap: str | None, delivery: str | None,
          shadow: bool | None, replicas: int | None, min_replicas: int | None, max_replicas: int | None,
          cpus_per_replica: float | None) -> None:
    """Serve TASK: REST on HOST:PORT, and the Kafka loop when a broker is given.

    One BentoML process by default; with --replicas or --min/--max-replicas, the same BentoML
    service as Ray Serve replicas, each a member of the task's consumer group.
    """
    from shared.runtime import open_model_folder
    from shared.settings import ServingSettings

    # The settings, validated once (a bad SLM_* value is one line), the options in place of theirs.
    kafka_options = {"bootstrap": bootstrap, "delivery": delivery, "shadow": shadow}
    settings = validated(ServingSettings.from_env, kafka={k: v for k, v in kafka_options.items() if v})
    if settings.kafka.shadow:
        from shared.kafka.topics import TaskTopics

        if any(v is not None for v in (replicas, min_replicas, max_replicas, cpus_per_replica)):
            raise ConfigError("--shadow with Ray Serve replicas is not supported yet: serve the shadow as one "
                              "process (no --replicas), or as the chart's shadow Deployment (mode: deployment)")
        TaskTopics.of(task, settings.kafka).consumer_group(settings.kafka.group_id)  # not the primary's group
    model_dir = Path(model_dir or settings.model_dir(task)).resolve()
    open_model_folder(model_dir)  # refuse here, in one line, rather than in the worker
    if settings.kafka.bootstrap:
        from shared.kafka.preflight import check_credentials

        check_credentials(settings.kafka)  # a refused password or certificate: one line, exit 2
    # A default static member id (host and port) unless one is set: a restart after kill -9 takes its
    # partitions back at once instead of waiting out its predecessor's session.
    settings = settings.replace(service={"model_dir": model_dir}).for_local_server(host, port)
    ray_options = {"num_replicas": replicas, "min_replicas": min_replicas, "max_replicas": max_replicas,
                   "cpus_per_replica": cpus_per_replica}
    if any(v is not None for v in ray_options.values()):
        from shared.ray_local import serve_replicas
        from shared.ray_settings import ReplicaSettings

        replica_settings = validated(ReplicaSettings, **{k: v for k, v in ray_options.items() if v is not None})
        serve_replicas(task, host, port, settings, replica_settings)
        return
    from shared.settings import service_import

    # The BentoML server is another process: it reads the settings from the environment they give it.
    bentoml_cli = str(Path(sys.executable).with_name("bentoml"))
    os.execve(bentoml_cli, [bentoml_cli, "serve", service_import(task), "--host", host, "--port", str(port)],
              settings.environment())
