"""``slm review``: reviewers in Label Studio. ``bridge`` is the product's (it runs in the serving image,
the chart's ``review.enabled``); ``up``, ``down`` and ``status`` (a local Label Studio) plug in from the
developer tools through the ``slm.review.commands`` entry point group, as ``slm``'s own groups do."""

from __future__ import annotations

from pathlib import Path

import click

from shared.console import clean_errors, validated
from shared.errors import ConfigError
from shared.task_kinds import TASKS
from slm.plugins import plugins

__all__ = ["review"]

PLUGIN_GROUP = "slm.review.commands"


@click.group()
def review() -> None:
    """Low-confidence answers reviewed in Label Studio; the verdicts back on <task>.feedback."""


@review.command("bridge")
@click.option("--task", required=True, type=click.Choice(TASKS))
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface of the webhook, probes and metrics.")
@click.option("--port", default=8090, show_default=True, type=int)
@click.option("--model", "model_dir", type=click.Path(path_type=Path), default=None,
              help="Model folder whose labels the project offers (default SLM_MODEL_DIR, else models/<task>).")
@clean_errors
def bridge(task: str, host: str, port: int, model_dir: Path | None) -> None:
    """Bridge TASK's review topic to Label Studio and its verdicts to TASK's feedback topic.

    Label Studio comes from SLM_REVIEW_LABEL_STUDIO_URL and SLM_REVIEW_LABEL_STUDIO_TOKEN (for the local one:
    `slm review status --json`), the broker from SLM_KAFKA_* as for the services. One project per task
    ("slm-services TASK", SLM_REVIEW_PROJECT) is created with the model's labels; Label Studio calls back
    SLM_REVIEW_WEBHOOK_URL (default http://127.0.0.1:PORT/webhook). Runs until SIGTERM or Ctrl-C.
    """
    from shared.kafka.settings import KafkaSettings
    from shared.review.bridge import ReviewBridge, serve_bridge
    from shared.review.settings import ReviewSettings
    from shared.runtime import read_model_info
    from shared.settings import ServiceSettings, default_model_dir
    from shared.task_kinds import ENTITIES, kind_named
    from shared.telemetry import setup_telemetry

    review_settings = validated(ReviewSettings)
    if not review_settings.label_studio_url or not review_settings.label_studio_token:
        raise ConfigError("set SLM_REVIEW_LABEL_STUDIO_URL and SLM_REVIEW_LABEL_STUDIO_TOKEN "
                          "(`slm review up` starts a local Label Studio; `slm review status --json` prints both)")
    kafka = validated(KafkaSettings)
    if not kafka.bootstrap:
        raise ConfigError("set SLM_KAFKA_BOOTSTRAP: the bridge reads <task>.review from Kafka")
    folder = model_dir or validated(ServiceSettings).model_dir or default_model_dir(task)
    info = read_model_info(folder)
    entities = kind_named(info.kind, folder).name == ENTITIES.name
    setup_telemetry(f"slm-{task}-review")  # OTEL_* as for the services; the chart names it the same way
    serve_bridge(ReviewBridge(task, list(info.labels), entities=entities, kafka=kafka, review=review_settings, port=port),
                 host, port)


for _command in plugins(PLUGIN_GROUP):
    review.add_command(_command)
