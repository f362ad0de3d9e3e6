"""``slm drift``: how far a task's last results on Kafka have moved from its model's drift reference.

The results topic carries each answer's label and score, not the request's text, so the command
reports the ``label`` and ``score`` features; text length is the service's gauge only
(``slm.drift.psi``, :mod:`shared.drift`). Reading changes nothing on the broker: no consumer
group, nothing committed, the connection options are the services' own.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import click

from shared.console import clean_errors, validated
from shared.drift import DriftReference, answer_features
from shared.errors import ConfigError
from shared.kafka.settings import KafkaSettings
from shared.kafka.topic_reader import NotAJsonObject, json_object, read_topic
from shared.task_kinds import TASKS

__all__ = ["DriftReport", "drift", "drift_report", "read_last_records", "verdict"]


def read_last_records(settings: KafkaSettings, topic: str, count: int, *, timeout_s: float = 60.0) -> list:
    """The last ``count`` records of ``topic`` as of now, oldest first (kafka-python ``ConsumerRecord``s).

    Each partition is read from ``count`` offsets before its end (:func:`read_topic`, ``read_committed``);
    the records of all partitions are ordered by timestamp and the last ``count`` kept. Under exactly-once,
    transaction markers take offsets too, so a partition can give fewer: with one partition, the last
    ``count`` offsets hold fewer than ``count`` results. A topic that does not exist has none.

    Raises:
        TopicReadError: the ends were not reached within ``timeout_s``.
    """
    records = read_topic(settings, topic, timeout_s=timeout_s, last=count)
    records.sort(key=lambda r: (r.timestamp, r.partition, r.offset))
    return records[-count:] if count else []


def verdict(value: float) -> str:
    """The usual reading of a PSI value."""
    if value < 0.1:
        return "no shift"
    if value <= 0.25:
        return "moderate shift"
    return "large shift"


@dataclass(frozen=True)
class DriftReport:
    """PSI of a model's results among the records read, against its reference.

    Args:
        model (`str`): the reference's model id; only its results count.
        read (`int`): records read.
        used (`int`): results of ``model`` among them.
        other_models (`dict[str, int]`): results of other models (another version still running), by id.
        unreadable (`int`): records that were not a result (not JSON, no label or entities).
        psi (`dict[str, float]`): ``label``, ``score`` and ``max``; empty when no result counted.
    """

    model: str
    read: int
    used: int
    other_models: dict[str, int] = field(default_factory=dict)
    unreadable: int = 0
    psi: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"model": self.model, "read": self.read, "used": self.used, "other_models": self.other_models,
                "unreadable": self.unreadable, "psi": self.psi}


def drift_report(reference: DriftReference, values: list[bytes | None]) -> DriftReport:
    """PSI of the results among ``values`` (record values, JSON) that ``reference``'s model gave."""
    answers, others, unreadable = [], Counter(), 0
    for value in values:
        try:
            result = json_object(value)
        except NotAJsonObject:
            result = None
        features = answer_features(result) if result is not None else None
        if features is None:
            unreadable += 1
        elif result.get("model") != reference.model:
            others[str(result.get("model"))] += 1
        else:
            answers.append(features)
    counts = reference.counts_of(answers)
    return DriftReport(reference.model, len(values), len(answers), dict(others), unreadable,
                       reference.psi_of({name: counts[name] for name in ("label", "score")}))


@click.group("drift", invoke_without_command=True)
@click.option("--task", type=click.Choice(TASKS), default=None, help="The task whose results are read.")
@click.option("--bootstrap", default=None, help="Kafka host:port (default SLM_KAFKA_BOOTSTRAP).")
@click.option("--topic-prefix", default=None, help="Topic prefix (default SLM_KAFKA_TOPIC_PREFIX).")
@click.option("--window", type=click.IntRange(min=1), default=None,
              help="Last results read (default SLM_DRIFT_WINDOW, 1000): each partition from N offsets before "
                   "its end; under exactly-once transaction markers take offsets, so fewer may be read.")
@click.option("--model", "model_dir", type=click.Path(path_type=Path), default=None,
              help="Model folder holding the reference (default models/<task>).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@click.pass_context
@clean_errors
def drift(ctx, task: str | None, bootstrap: str | None, topic_prefix: str | None, window: int | None,
          model_dir: Path | None, as_json: bool) -> None:
    """PSI of TASK's last results on <task>.results against its model's drift reference.

    Label and score only: results carry no text, so text length is the service's gauge
    (slm.drift.psi) only. Under 0.1: no shift; 0.1 to 0.25: moderate; above: large.
    Under exactly-once, transaction markers take offsets: the last N offsets can hold fewer
    than N results (the report says how many it read).
    """
    if ctx.invoked_subcommand is not None:
        return
    from shared.drift import REFERENCE_FILE, DriftReference
    from shared.kafka import TaskTopics
    from shared.kafka.settings import KafkaSettings
    from shared.settings import ServiceSettings, default_model_dir

    if task is None:
        raise ConfigError("give --task (or a subcommand: slm drift reference)")
    model_dir = model_dir or default_model_dir(task)
    reference = DriftReference.read(model_dir)
    if reference is None:
        raise ConfigError(f"{model_dir} has no {REFERENCE_FILE}: `slm drift reference --task {task} --model "
                          f"{model_dir}` writes it")
    kafka = validated(KafkaSettings, **({"bootstrap": bootstrap} if bootstrap else {}),
                      **({"topic_prefix": topic_prefix} if topic_prefix is not None else {}))
    if not kafka.bootstrap:
        raise ConfigError("give --bootstrap or set SLM_KAFKA_BOOTSTRAP")
    window = window or validated(ServiceSettings).drift_window
    topic = TaskTopics(task, kafka.topic_prefix).results
    records = read_last_records(kafka, topic, window)
    report = drift_report(reference, [r.value for r in records])
    if as_json:
        click.echo(json.dumps({"task": task, "topic": topic, "window": window, **report.to_dict()}))
        return
    click.echo(f"{topic}: last {report.read} records, {report.used} results of {report.model}")
    for model, n in sorted(report.other_models.items()):
        click.echo(f"  {n} results of another model ({model}) left out")
    if report.unreadable:
        click.echo(f"  {report.unreadable} records that are no result left out")
    if not report.psi:
        click.echo("no results of this model to compare")
        return
    for feature, value in report.psi.items():
        click.echo(f"psi {feature:<6} {value:.4f}  {verdict(value)}")
    click.echo("psi length: not in the results; the service's gauge slm.drift.psi reports it")


@drift.command("reference")
@click.option("--task", type=click.Choice(TASKS), required=True)
@click.option("--model", "model_dir", type=click.Path(path_type=Path), default=None,
              help="Model folder (default models/<task>).")
@click.option("--data", "data_file", type=click.Path(path_type=Path, exists=True), default=None,
              help="Labelled held-out file (default: the task's test split).")
@clean_errors
def drift_reference(task: str, model_dir: Path | None, data_file: Path | None) -> None:
    """Write MODEL's drift reference from its answers on DATA, and rewrite its manifest.

    For a folder trained before training wrote one (training does, from its test file).
    """
    from pipelines.reference_refresh import refresh_drift_reference
    from pipelines.tasks import dataset_for
    from shared.drift import REFERENCE_FILE
    from shared.settings import default_model_dir

    model_dir = model_dir or default_model_dir(task)
    data_file = data_file or dataset_for(task).test_file
    reference = refresh_drift_reference(model_dir, data_file)
    click.echo(f"{model_dir / REFERENCE_FILE}: {reference.items} answers of {reference.model} on {data_file}; "
               "manifest rewritten")
