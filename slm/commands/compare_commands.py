"""``slm compare``: the primary's answers against the shadow's, and both against reviewers' labels.

The primary publishes to ``<task>.results``, a shadow (``SLM_KAFKA_SHADOW``) to
``<task>.shadow.results``, both answering the same ``<task>.requests``. This reads both topics to
the end they have when it starts, joins the answers by request id (the last answer of an id
counts: at least once may deliver one twice; "last" as ``slm feedback export`` orders records,
:func:`pipelines.feedback.in_order`) and reports:

- agreement: the share of joined ids with the same answer (same label; for entities, the same
  set of (type, start, end) spans);
- malformed: records of a result topic that are no result (not JSON, no id, model, label and
  score, or a span without its type, offsets or score), skipped and counted: a topic any client
  can write to must not stop the report;
- per model: its model ids and the distribution of its scores (a classification's top score, each
  entity span's score): quantiles and a ten-bin histogram;
- where reviewers' verdicts exist on ``<task>.feedback`` (records ``{"id", "label"}``; for
  entities a list of spans ``{"type", "start", "end"}``), each model's accuracy on the joined
  items that have one. No feedback topic: no such section (the primary creates the topic, so an
  installation without reviewers yet reads "none of the joined ids has a reviewer's label yet").

The logic is :func:`compare_answers`, on decoded values; :func:`compare_command` reads the topics and wraps it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import click

from shared.console import clean_errors, validated
from shared.errors import ConfigError, SlmError
from shared.task_kinds import TASKS

__all__ = ["CompareError", "Comparison", "ModelSummary", "compare_answers", "compare_command", "decoded_values",
           "render"]

QUANTILES = (0.0, 0.1, 0.5, 0.9, 1.0)
BINS = 10


class CompareError(SlmError):
    """The result topics could not be read (missing, or not to their end in time)."""


@dataclass
class ModelSummary:
    """One side's answers: ``models`` counts answers per model id, ``scores`` every score."""

    answers: int = 0
    models: Counter = field(default_factory=Counter)
    scores: list[float] = field(default_factory=list)
    correct: int = 0  # joined items with feedback this model answered as the reviewer did

    def quantiles(self) -> dict[float, float]:
        """Score quantiles (nearest rank) at :data:`QUANTILES`; empty without scores."""
        ordered = sorted(self.scores)
        if not ordered:
            return {}
        return {q: ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] for q in QUANTILES}

    def histogram(self) -> list[int]:
        """Scores counted into :data:`BINS` equal bins over [0, 1] (1.0 in the last)."""
        counts = [0] * BINS
        for score in self.scores:
            counts[min(BINS - 1, max(0, int(score * BINS)))] += 1
        return counts


@dataclass
class Comparison:
    """What :func:`compare_answers` found.

    Args:
        joined (`int`): ids answered by both.
        agreed (`int`): joined ids with the same answer.
        primary_only / shadow_only (`int`): ids answered by one side only (the other is behind,
            was started later, or dead-lettered the request).
        primary / shadow (`ModelSummary`): each side over the joined ids.
        feedback (`int | None`): joined ids with a reviewer's label; None when no feedback was read.
        primary_malformed / shadow_malformed (`int`): values of each result topic that are no result, skipped.
        feedback_malformed (`int`): feedback records without an id or with a label of another shape, skipped.
    """

    joined: int = 0
    agreed: int = 0
    primary_only: int = 0
    shadow_only: int = 0
    primary: ModelSummary = field(default_factory=ModelSummary)
    shadow: ModelSummary = field(default_factory=ModelSummary)
    feedback: int | None = None
    primary_malformed: int = 0
    shadow_malformed: int = 0
    feedback_malformed: int = 0

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.joined if self.joined else None


@dataclass(frozen=True)
class _Result:
    """What the comparison takes from a result: its model id, its answer and its scores."""

    model: str
    answer: object  # a classification's label, or an entity result's frozenset of (type, start, end)
    scores: tuple[float, ...]


def _result(value: object) -> tuple[str, _Result] | None:
    """``(id, result)`` of a decoded result value; None when it is not one the services publish."""
    if not isinstance(value, dict) or value.get("id") is None or not isinstance(value.get("model"), str):
        return None
    try:
        if "entities" in value:
            spans = [(e["type"], int(e["start"]), int(e["end"]), float(e["score"])) for e in value["entities"]]
            if not all(isinstance(span[0], str) for span in spans):
                return None
            return str(value["id"]), _Result(value["model"], frozenset(span[:3] for span in spans),
                                             tuple(span[3] for span in spans))
        if not isinstance(value.get("label"), str):
            return None
        return str(value["id"]), _Result(value["model"], value["label"], (float(value["score"]),))
    except (KeyError, TypeError, ValueError):  # a span that is no object, a missing or non-numeric field
        return None


def _verdict(label: object) -> object | None:
    """A reviewer's label in the form of :func:`_answer`; None when it is neither a label nor spans."""
    if isinstance(label, str):
        return label
    if isinstance(label, list):
        try:
            return frozenset((e["type"], int(e["start"]), int(e["end"])) for e in label)
        except (TypeError, KeyError, ValueError):
            return None
    return None


def _last_by_id(values: Iterable[object]) -> tuple[dict[str, _Result], int]:
    """The last well-formed result of each id, and the count of values that are no result."""
    latest: dict[str, _Result] = {}
    malformed = 0
    for value in values:
        parsed = _result(value)
        if parsed is None:
            malformed += 1
        else:
            latest[parsed[0]] = parsed[1]
    return latest, malformed


def compare_answers(primary: Iterable[object], shadow: Iterable[object],
                    feedback: Iterable[object] | None = None) -> Comparison:
    """Join ``primary`` and ``shadow`` results (decoded values, in the order they were published) by id.

    A value that is not a result as the services publish it (not a JSON object, no id, model,
    label or score, a span without its type, offsets or score) is skipped and counted.
    ``feedback``: reviewers' records ``{"id", "label"}`` (the last per id counts); None when there
    is no feedback topic. Records without an id or with a label of another shape are skipped and counted.
    """
    (first, first_malformed), (second, second_malformed) = _last_by_id(primary), _last_by_id(shadow)
    joined = first.keys() & second.keys()
    comparison = Comparison(joined=len(joined), primary_only=len(first.keys() - joined),
                            shadow_only=len(second.keys() - joined), primary_malformed=first_malformed,
                            shadow_malformed=second_malformed)
    verdicts: dict[str, object] = {}
    if feedback is not None:
        for record in feedback:
            verdict = _verdict(record.get("label")) if isinstance(record, dict) else None
            if verdict is not None and record.get("id") is not None:
                verdicts[str(record["id"])] = verdict
            else:
                comparison.feedback_malformed += 1
        comparison.feedback = sum(1 for id_ in joined if id_ in verdicts)
    for id_ in joined:
        answers = []
        for summary, result in ((comparison.primary, first[id_]), (comparison.shadow, second[id_])):
            summary.answers += 1
            summary.models[result.model] += 1
            summary.scores.extend(result.scores)
            answers.append(result.answer)
            if id_ in verdicts and result.answer == verdicts[id_]:
                summary.correct += 1
        comparison.agreed += answers[0] == answers[1]
    return comparison


def render(comparison: Comparison, topics: tuple[str, str]) -> list[str]:
    """The report's lines: agreement, each model's ids and scores, accuracy on feedback."""
    c = comparison
    lines = [f"joined        {c.joined} ids answered by both ({c.primary_only} by the primary only, "
             f"{c.shadow_only} by the shadow only)"]
    if c.primary_malformed or c.shadow_malformed:
        lines.append(f"skipped       {c.primary_malformed + c.shadow_malformed} records that are no result "
                     f"({c.primary_malformed} on {topics[0]}, {c.shadow_malformed} on {topics[1]})")
    if c.agreement is None:
        return [*lines, "agreement     n/a (no id answered by both)"]
    lines.append(f"agreement     {c.agreement:.4f} ({c.agreed} of {c.joined} the same answer)")
    for name, topic, summary in (("primary", topics[0], c.primary), ("shadow", topics[1], c.shadow)):
        lines += ["", f"== {name} ({topic}) =="]
        lines += [f"model         {model} ({n} answers)" for model, n in summary.models.most_common()]
        quantiles = summary.quantiles()
        if quantiles:
            lines.append("scores        " + "  ".join(f"{'min' if q == 0 else 'max' if q == 1 else f'p{q * 100:.0f}'} "
                                                      f"{v:.3f}" for q, v in quantiles.items()))
            counts = summary.histogram()
            top = max(counts) or 1
            for i, count in enumerate(counts):
                lines.append(f"  {i / BINS:.1f}-{(i + 1) / BINS:.1f}  {'#' * round(30 * count / top):<30} {count}")
        else:
            lines.append("scores        none (no entities found)")
    if c.feedback:
        lines += ["", f"== feedback ({c.feedback} joined ids with a reviewer's label) =="]
        lines.append(f"accuracy      primary {c.primary.correct / c.feedback:.4f}  shadow {c.shadow.correct / c.feedback:.4f}")
    elif c.feedback == 0:
        lines += ["", "feedback      none of the joined ids has a reviewer's label yet"]
    if c.feedback_malformed:
        lines.append(f"              {c.feedback_malformed} feedback records skipped (no id, or a label of "
                     f"another shape)")
    return lines


def decoded_values(records: Iterable) -> list[dict | None]:
    """Each record's value as a JSON object (the tools' one parse, ``json_object``); None where it is not
    one, counted as malformed by :func:`compare_answers`."""
    from shared.kafka.topic_reader import NotAJsonObject, json_object

    values: list[dict | None] = []
    for record in records:
        try:
            values.append(json_object(record.value))
        except NotAJsonObject:
            values.append(None)
    return values


@click.command("compare")
@click.option("--task", type=click.Choice(TASKS), required=True)
@click.option("--bootstrap", default=None,
              help="Kafka bootstrap servers (default SLM_KAFKA_BOOTSTRAP; security options from SLM_KAFKA_*).")
@click.option("--topic-prefix", default=None, help="Topic prefix (default SLM_KAFKA_TOPIC_PREFIX).")
@click.option("--timeout", "timeout_s", type=float, default=120.0, show_default=True,
              help="Seconds to read each topic to its end.")
@clean_errors
def compare_command(task: str, bootstrap: str | None, topic_prefix: str | None, timeout_s: float) -> None:
    """Agreement of TASK's primary and shadow results, their model ids and scores, and their
    accuracy on reviewers' feedback (<task>.feedback) where there is any."""
    from pipelines.feedback import in_order
    from shared.kafka.settings import KafkaSettings
    from shared.kafka.topic_reader import read_topic_or_none
    from shared.kafka.topics import TaskTopics

    options = {**({"bootstrap": bootstrap} if bootstrap else {}),
               **({"topic_prefix": topic_prefix} if topic_prefix is not None else {})}
    settings = validated(KafkaSettings, **options)
    if not settings.bootstrap:
        raise ConfigError("give --bootstrap or set SLM_KAFKA_BOOTSTRAP")
    topics = TaskTopics(task, settings.topic_prefix)
    client = settings.client_options()
    read = {}
    for side, topic in (("primary", topics.primary_results), ("shadow", topics.shadow_results)):
        records = read_topic_or_none(client, topic, timeout_s=timeout_s)
        if records is None:
            raise CompareError(f"topic {topic} does not exist: is the {side} of {task} running"
                               + (f" (slm serve {task} --shadow, or the chart's shadow.enabled)?" if side == "shadow"
                                  else "?"))
        read[side] = decoded_values(in_order(records))
    # The reviewers' topic (slm feedback): read when it exists, else the report has no feedback section.
    feedback = read_topic_or_none(client, topics.feedback, timeout_s=timeout_s)
    comparison = compare_answers(read["primary"], read["shadow"],
                                 None if feedback is None else decoded_values(in_order(feedback)))
    click.echo("\n".join(render(comparison, (topics.primary_results, topics.shadow_results))))
