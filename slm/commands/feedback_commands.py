"""``slm feedback``: reviewers' verdicts on ``<task>.feedback`` into a training file for ``slm train --feedback``.

Parses the options, reads both topics to their end (:mod:`shared.kafka.topic_reader`), joins them
(:mod:`pipelines.feedback`) and reports the counts; it never prints a record's text.
"""

from __future__ import annotations

from pathlib import Path

import click

from shared.console import clean_errors, validated
from shared.errors import ConfigError, DataError
from shared.task_kinds import TASKS

__all__ = ["feedback"]


@click.group()
def feedback() -> None:
    """Reviewers' verdicts (<task>.feedback) joined with the review records (<task>.review)."""


@feedback.command("export")
@click.option("--task", required=True, type=click.Choice(TASKS))
@click.option("--bootstrap", default=None,
              help="Kafka bootstrap servers (host:port; default SLM_KAFKA_BOOTSTRAP); TLS and SASL from SLM_KAFKA_*.")
@click.option("--out", "out_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Labelled file to write: CoNLL for entities, .jsonl or .csv for the classification tasks.")
@click.option("--topic-prefix", default=None, help="Topic prefix (default SLM_KAFKA_TOPIC_PREFIX).")
@click.option("--model", "model_dir", type=click.Path(path_type=Path), default=None,
              help="Model folder whose labels (entities: span types) a verdict may use (default models/<task>).")
@click.option("--allow-new-labels", is_flag=True,
              help="Accept labels (span types) the model does not have, to add a class on purpose.")
@click.option("--timeout", "timeout_s", type=float, default=120.0, show_default=True,
              help="Seconds to read each topic to its end before giving up.")
@click.option("--text-col", default=None, help="Column for the text (default: the task's training file's).")
@click.option("--label-col", default=None, help="Column for the label (default: the task's training file's).")
@click.option("--field-cols", default=None, help="Comma-separated field columns (default: the task's training file's).")
@clean_errors
def feedback_export(task: str, bootstrap: str | None, out_file: Path, topic_prefix: str | None,
                    model_dir: Path | None, allow_new_labels: bool, timeout_s: float, text_col: str | None,
                    label_col: str | None, field_cols: str | None) -> None:
    """Join TASK's feedback with its review records by id into a training file.

    The last verdict on an id wins (offset order in a partition, partitions merged by timestamp);
    one line of counts says what was joined, repeated, overridden, unmatched or invalid.
    A label the model does not have (a typo would become a class) is invalid unless --allow-new-labels.
    """
    from pipelines.common.data import ColumnChoice
    from pipelines.feedback import join_feedback, model_label_names, write_training_file
    from pipelines.tasks import dataset_for
    from shared.kafka.settings import KafkaSettings
    from shared.kafka.topic_reader import read_topic
    from shared.kafka.topics import TaskTopics
    from shared.runtime import read_model_info
    from shared.settings import default_model_dir
    from shared.task_kinds import ENTITIES, kind_of_task

    entities = kind_of_task(task).name == ENTITIES.name
    choice = ColumnChoice(text_col, label_col, field_cols)
    if entities and choice.given:
        raise ConfigError("entities exports CoNLL (token, tag): --text-col, --label-col and --field-cols are for "
                          "the classification tasks")
    options = {**({"bootstrap": bootstrap} if bootstrap else {}),
               **({"topic_prefix": topic_prefix} if topic_prefix is not None else {})}
    settings = validated(KafkaSettings, **options)
    if not settings.bootstrap:
        raise ConfigError("give --bootstrap or set SLM_KAFKA_BOOTSTRAP")
    labels = None
    if not allow_new_labels:
        # Read before the topics: a missing model folder is reported before minutes of reading.
        labels = model_label_names(read_model_info(model_dir or default_model_dir(task)).labels, entities=entities)
    topics = TaskTopics(task, settings.topic_prefix)
    reviews = read_topic(settings, topics.review, timeout_s=timeout_s)
    verdicts = read_topic(settings, topics.feedback, timeout_s=timeout_s)
    export = join_feedback(reviews, verdicts, entities=entities, labels=labels)
    click.echo(export.counts.summary())
    for reason, count in sorted(export.invalid_reasons.items()):
        click.echo(f"  invalid: {reason} ({count})")
    if not export.items:
        raise DataError(f"no feedback on {topics.feedback} joined a review record on {topics.review}; "
                        f"{out_file} not written")
    columns = None if entities else choice.over(dataset_for(task).columns)
    write_training_file(export.items, out_file, entities=entities, columns=columns)
    click.echo(f"wrote {len(export.items)} labelled items to {out_file}")
