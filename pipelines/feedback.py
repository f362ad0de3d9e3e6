"""Reviewers' verdicts joined with the review records they answer, into a labelled training file.

A service copies each low-confidence result to ``<task>.review`` with the request's input
(``SLM_REVIEW_INCLUDE_INPUT``); a reviewer publishes ``{"id", "label"}`` to ``<task>.feedback``
(for entities, ``label`` is the corrected list of spans ``{"type", "start", "end"}``, the result
schema's shape, ``text`` and ``score`` optional). :func:`join_feedback` pairs them by id and
:func:`write_training_file` writes the pairs in the task's training format, which ``slm train
--feedback`` reads next to the original file.

Pure logic over record-like objects (``value``, ``timestamp``, ``partition``, ``offset``): the
reading is :mod:`shared.kafka.topic_reader`'s, so every counting rule is unit-testable.

Order decides between verdicts on one id: the last one wins. Records are taken partition by
partition in offset order, and the partitions merged by timestamp; so a reviewer who keys
feedback by id (one partition per id) gets exact append order, and any mix is still deterministic.
"""

from __future__ import annotations

import csv
import heapq
import json
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.common.data import ColumnMapping
from shared.errors import DataError
from shared.kafka.topic_reader import NotAJsonObject, json_object
from shared.model_text import field_value_text
from shared.runtime.tagging import OUTSIDE, parse_tag

__all__ = ["ExportCounts", "FeedbackExport", "InvalidFeedback", "LabelledItem", "conll_tokens", "in_order",
           "join_feedback", "model_label_names", "write_training_file"]

# A tag is the token's last whitespace-separated column in CoNLL: an entity type must not contain spaces.
_ENTITY_TYPE = re.compile(r"^[^\s]+$")


class InvalidFeedback(ValueError):
    """A feedback record that cannot be used; the message says why, never quoting input text."""


Spans = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class LabelledItem:
    """One reviewed input with its final label (a class name, or entity spans for entities)."""

    id: str
    text: str
    fields: dict[str, Any]
    label: str | Spans


@dataclass
class ExportCounts:
    """What :func:`join_feedback` made of the two topics.

    Args:
        review_records (`int`): records read from ``<task>.review``.
        feedback_records (`int`): records read from ``<task>.feedback``.
        joined (`int`): distinct ids written, each with its last label.
        duplicates (`int`): feedback that repeated the label its id already had.
        conflicts_overridden (`int`): feedback that replaced an earlier, different label of its id.
        without_review (`int`): valid feedback whose id has no review record.
        review_without_input (`int`): valid feedback whose review record carries no input
            (written with ``SLM_REVIEW_INCLUDE_INPUT=false``): nothing to train on.
        invalid (`int`): feedback records that are not ``{"id", "label"}`` with a usable label.
    """

    review_records: int = 0
    feedback_records: int = 0
    joined: int = 0
    duplicates: int = 0
    conflicts_overridden: int = 0
    without_review: int = 0
    review_without_input: int = 0
    invalid: int = 0

    def summary(self) -> str:
        return (f"joined {self.joined}, duplicates {self.duplicates}, conflicts overridden "
                f"{self.conflicts_overridden}, feedback without a review record {self.without_review}, "
                f"review records without input {self.review_without_input}, invalid feedback records "
                f"{self.invalid} (read {self.feedback_records} feedback and {self.review_records} review records)")


@dataclass
class FeedbackExport:
    """The joined items, in the order their final verdict arrived, and the counts."""

    items: list[LabelledItem] = field(default_factory=list)
    counts: ExportCounts = field(default_factory=ExportCounts)
    invalid_reasons: dict[str, int] = field(default_factory=dict)


def in_order(records: Iterable[Any]) -> list[Any]:
    """Each partition in offset order, partitions merged by timestamp (ties: lower partition first).

    The order in which "the last record of an id wins" is decided, here and in ``slm compare``."""
    by_partition: dict[int, list] = {}
    for record in records:
        by_partition.setdefault(record.partition, []).append(record)
    runs = [sorted(run, key=lambda r: r.offset) for _, run in sorted(by_partition.items())]
    return list(heapq.merge(*runs, key=lambda r: (r.timestamp, r.partition)))


def _json_object(value: bytes | None) -> dict:
    try:
        return json_object(value)
    except NotAJsonObject as exc:
        raise InvalidFeedback(str(exc)) from None


def model_label_names(labels: Sequence[str], *, entities: bool) -> frozenset[str]:
    """The names a verdict may use for a model whose output labels are ``labels`` (``ModelInfo.labels``):
    the classes, or for entities the span types of its IOB2 tags (``B-ORG`` gives ``ORG``)."""
    if not entities:
        return frozenset(labels)
    return frozenset(parsed[1] for parsed in map(parse_tag, labels) if parsed is not None)


def _reviewed_inputs(records: Iterable[Any]) -> dict[str, dict | None]:
    """id -> the review record's ``input`` (``None`` when written without it). The last record of an id wins
    (a request consumed twice, at least once, gives two copies of the same input), but a copy without
    input never hides one with it (written before ``SLM_REVIEW_INCLUDE_INPUT`` was turned off)."""
    inputs: dict[str, dict | None] = {}
    for record in in_order(records):
        try:
            payload = _json_object(record.value)
        except InvalidFeedback:
            continue  # the services write these; one unreadable copy must not stop an export
        if not isinstance(payload.get("id"), str):
            continue
        given = payload.get("input")
        ok = isinstance(given, dict) and isinstance(given.get("text"), str) and isinstance(given.get("fields", {}), dict)
        if ok:
            inputs[payload["id"]] = {"text": given["text"], "fields": given.get("fields", {})}
        else:
            inputs.setdefault(payload["id"], None)
    return inputs


def _feedback(payload: dict) -> tuple[str, Any]:
    item_id, label = payload.get("id"), payload.get("label")
    if not isinstance(item_id, str) or not item_id:
        raise InvalidFeedback("id missing or not a non-empty string")
    if "label" not in payload:
        raise InvalidFeedback("label missing")
    return item_id, label


def _class_label(label: Any, known: Collection[str] | None) -> str:
    if not isinstance(label, str) or not label.strip():
        raise InvalidFeedback("label is not a non-empty string")
    # A typo ("bulish") would otherwise become a class of its own when the model is retrained.
    if known is not None and label.strip() not in known:
        raise InvalidFeedback("label not among the model's labels")
    return label.strip()


def _entity_spans(label: Any, text: str, known: Collection[str] | None) -> Spans:
    """The corrected spans, checked against the reviewed text: within it, typed, not overlapping; each
    span's edges moved inwards past whitespace, for a span that starts or ends on a space would give
    its first token an ``I-`` tag with no ``B-`` before it in the CoNLL file."""
    if not isinstance(label, list):
        raise InvalidFeedback("entities label is not a list of spans")
    spans = []
    for span in label:
        if not isinstance(span, dict):
            raise InvalidFeedback("a span is not an object")
        kind, start, end = span.get("type"), span.get("start"), span.get("end")
        if not isinstance(kind, str) or not _ENTITY_TYPE.match(kind):
            raise InvalidFeedback("a span's type is missing or contains whitespace")
        if known is not None and kind not in known:
            raise InvalidFeedback("a span's type is not among the model's entity types")
        if type(start) is not int or type(end) is not int:
            # The types only: the values are whatever the record held, and reasons are printed.
            raise InvalidFeedback(f"span offsets are not integers ({type(start).__name__}..{type(end).__name__})")
        if not 0 <= start < end <= len(text):
            raise InvalidFeedback(f"span offsets {start}..{end} are not within the text (0..{len(text)})")
        if "text" in span and span["text"] != text[start:end]:
            raise InvalidFeedback(f"span text differs from the reviewed text at {start}..{end}")
        if not text[start:end].strip():
            raise InvalidFeedback(f"span {start}..{end} covers only whitespace")
        while text[start].isspace():
            start += 1
        while text[end - 1].isspace():
            end -= 1
        spans.append((kind, start, end))
    spans.sort(key=lambda s: (s[1], s[2]))
    for (_, _, end), (_, start, _) in zip(spans, spans[1:]):
        if start < end:
            raise InvalidFeedback("spans overlap")
    return tuple(spans)


def join_feedback(review_records: Sequence[Any], feedback_records: Sequence[Any], *, entities: bool,
                  labels: Collection[str] | None = None) -> FeedbackExport:
    """Pair each id's last valid verdict with its reviewed input.

    Args:
        review_records (`Sequence`): records of ``<task>.review`` (their value is a result with ``input``).
        feedback_records (`Sequence`): records of ``<task>.feedback``.
        entities (`bool`): labels are entity spans (the entities task), else class names.
        labels (`Collection[str]`, *optional*): the class names (for entities, span types) a verdict may
            use (:func:`model_label_names`); any other is invalid. ``None`` accepts new ones.
    """
    export = FeedbackExport()
    counts = export.counts
    counts.review_records, counts.feedback_records = len(review_records), len(feedback_records)
    inputs = _reviewed_inputs(review_records)
    final: dict[str, LabelledItem] = {}
    for record in in_order(feedback_records):
        try:
            item_id, label = _feedback(_json_object(record.value))
            if item_id not in inputs:
                counts.without_review += 1
                continue
            given = inputs[item_id]
            if given is None:
                counts.review_without_input += 1
                continue
            label = _entity_spans(label, given["text"], labels) if entities else _class_label(label, labels)
        except InvalidFeedback as exc:
            counts.invalid += 1
            reason = str(exc)
            export.invalid_reasons[reason] = export.invalid_reasons.get(reason, 0) + 1
            continue
        previous = final.pop(item_id, None)  # popped so the dict keeps the order of final verdicts
        if previous is not None:
            if previous.label == label:
                counts.duplicates += 1
            else:
                counts.conflicts_overridden += 1
        final[item_id] = LabelledItem(item_id, given["text"], dict(given["fields"]), label)
    export.items = list(final.values())
    counts.joined = len(export.items)
    return export


def conll_tokens(text: str, spans: Spans) -> list[tuple[str, str]]:
    """``text`` as CoNLL (token, IOB2 tag) pairs: whitespace-separated pieces, also cut at every span
    boundary so each entity is whole tokens (``"Acme,"`` with ``Acme`` tagged gives ``Acme`` and ``,``)."""
    cuts = sorted({offset for _, start, end in spans for offset in (start, end)})
    pieces = []
    for match in re.finditer(r"\S+", text):
        start = match.start()
        for cut in (c for c in cuts if match.start() < c < match.end()):
            pieces.append((start, cut))
            start = cut
        pieces.append((start, match.end()))
    tagged = []
    for start, end in pieces:
        owner = next((s for s in spans if s[1] <= start and end <= s[2]), None)
        if owner is None:
            tag = OUTSIDE
        else:
            tag = ("B-" if start == owner[1] else "I-") + owner[0]
        tagged.append((text[start:end], tag))
    return tagged


def _write_conll(items: Sequence[LabelledItem], path: Path) -> None:
    # Each item its own document: reviewed texts are unrelated, so training with --context-words must
    # not read one as the context of the next.
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        for item in items:
            handle.write("-DOCSTART- O\n\n")
            for token, tag in conll_tokens(item.text, item.label):
                handle.write(f"{token} {tag}\n")
            handle.write("\n")


def _classification_rows(items: Sequence[LabelledItem], columns: ColumnMapping) -> list[dict[str, str]]:
    """One row per item under the training file's column names; fields as the encoder reads them
    (``field_value_text``: a JSON ``20.0`` and a CSV ``20`` are the same input), absent ones empty."""
    rows = []
    for item in items:
        row = {columns.text: item.text, columns.label: item.label}
        for name in columns.fields:
            value = item.fields.get(name)
            row[name] = "" if value is None else field_value_text(value)
        row.setdefault("id", item.id)
        rows.append(row)
    return rows


def write_training_file(items: Sequence[LabelledItem], path: str | Path, *, entities: bool,
                        columns: ColumnMapping | None = None) -> Path:
    """Write ``items`` as a training file ``slm train`` reads: CoNLL for entities; for classification
    JSONL (``.jsonl``, ``.json``, ``.ndjson``) or CSV (``.csv``) under ``columns``' names (the task's).

    Raises:
        DataError: an unsupported suffix for classification.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if entities:
        _write_conll(items, path)
        return path
    columns = columns or ColumnMapping()
    rows = _classification_rows(items, columns)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    elif suffix == ".csv":
        names = list(rows[0]) if rows else [columns.text, columns.label, *columns.fields, "id"]
        with open(path, "w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=names)
            writer.writeheader()
            writer.writerows(rows)
    else:
        raise DataError(f"{path}: unsupported suffix {suffix!r} for a classification file (use .jsonl or .csv)")
    return path
