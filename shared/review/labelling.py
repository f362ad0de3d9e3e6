"""What the review bridge puts into Label Studio and reads back, for each task kind. Pure functions.

A project per task: a single-choice ``Choices`` control named ``label`` over the text for the classification
tasks, ``Labels`` (span labels of the model's entity types) for entities. A Label Studio task carries the
review record's id as ``data.slm_id``, the only key the bridge looks tasks up by, and the model's answer as
a prediction with its score, so reviewers can sort by confidence and correct the answer instead of typing it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import quoteattr

from shared.model_text import field_value_text
from shared.runtime.tagging import parse_tag

__all__ = ["CONTROL", "ID_KEY", "TRACE_KEY", "NotReviewable", "ReviewItem", "entity_types", "label_config",
           "project_title", "review_item", "task_payload", "verdict_label"]

#: The control's name in every project: a prediction's and an annotation's ``from_name``.
CONTROL = "label"
#: The object (the text) the control labels: ``to_name``.
OBJECT = "text"
#: The key of the review record's id in a Label Studio task's data.
ID_KEY = "slm_id"
#: The key of the answer's trace context (``traceparent``, ``tracestate``), so that its verdict continues the trace.
TRACE_KEY = "slm_trace"


class NotReviewable(ValueError):
    """A review record that cannot become a labelling task; the message never quotes input text."""


def project_title(task: str, configured: str | None = None) -> str:
    """The title of ``task``'s project: ``configured`` (``SLM_REVIEW_PROJECT``), else ``slm-services <task>``."""
    return configured or f"slm-services {task}"


def entity_types(labels: Sequence[str]) -> list[str]:
    """The span types of a model's IOB2 tags, in the model's order (``B-ORG``, ``I-ORG`` give ``ORG``)."""
    types: list[str] = []
    for parsed in map(parse_tag, labels):
        if parsed is not None and parsed[1] not in types:
            types.append(parsed[1])
    return types


def label_config(labels: Sequence[str], *, entities: bool) -> str:
    """The project's labelling interface for a model whose output labels are ``labels``.

    Classification shows the item's fields above the text (``$fields_text``) and asks for exactly one
    class; entities asks for spans of the model's entity types (none is a valid verdict: no entity)."""
    if entities:
        choices = "".join(f"<Label value={quoteattr(kind)}/>" for kind in entity_types(labels))
        return (f'<View><Labels name="{CONTROL}" toName="{OBJECT}">{choices}</Labels>'
                f'<Text name="{OBJECT}" value="$text"/></View>')
    choices = "".join(f"<Choice value={quoteattr(label)}/>" for label in labels)
    return (f'<View><Header value="$fields_text" size="6"/><Text name="{OBJECT}" value="$text"/>'
            f'<Choices name="{CONTROL}" toName="{OBJECT}" choice="single" showInline="true" required="true">'
            f'{choices}</Choices></View>')


@dataclass(frozen=True)
class ReviewItem:
    """One review record as the bridge uses it: its id, the input it answered, the model's answer and the
    answer's trace context (its record's ``traceparent`` and ``tracestate`` headers)."""

    id: str
    text: str
    fields: dict[str, Any]
    model: str
    answer: dict[str, Any]
    trace: dict[str, str] = field(default_factory=dict)


def review_item(payload: Any, trace: dict[str, str] | None = None) -> ReviewItem:
    """The review record ``payload`` (a result with ``input``, :mod:`shared.kafka.batch_plan`) whose headers
    carried the trace context ``trace``.

    Raises:
        NotReviewable: not a result object, no id, or no input (written with SLM_REVIEW_INCLUDE_INPUT=false).
    """
    if not isinstance(payload, dict):
        raise NotReviewable("value is not a JSON object")
    item_id = payload.get("id")
    if not isinstance(item_id, str) or not item_id:
        raise NotReviewable("id missing or not a non-empty string")
    given = payload.get("input")
    if not isinstance(given, dict) or not isinstance(given.get("text"), str):
        raise NotReviewable("no input: the service writes review records without it (SLM_REVIEW_INCLUDE_INPUT=false)")
    fields = given.get("fields") or {}
    if not isinstance(fields, dict):
        raise NotReviewable("input.fields is not an object")
    return ReviewItem(item_id, given["text"], fields, str(payload.get("model", "")), payload, dict(trace or {}))


def _score(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _classification_prediction(answer: dict) -> dict | None:
    label = answer.get("label")
    if not isinstance(label, str):
        return None
    return {"score": _score(answer.get("score")),
            "result": [{"from_name": CONTROL, "to_name": OBJECT, "type": "choices", "value": {"choices": [label]}}]}


def _entities_prediction(answer: dict, text: str) -> dict | None:
    spans = answer.get("entities")
    if not isinstance(spans, list):
        return None
    result, scores = [], []
    for number, span in enumerate(spans):
        if not isinstance(span, dict):
            continue
        start, end, kind = span.get("start"), span.get("end"), span.get("type")
        if not (type(start) is int and type(end) is int and isinstance(kind, str) and 0 <= start < end <= len(text)):
            continue  # a span the text does not hold cannot be shown; the reviewer sees the text without it
        score = _score(span.get("score"))
        scores.append(score)
        result.append({"id": f"p{number}", "from_name": CONTROL, "to_name": OBJECT, "type": "labels", "score": score,
                       "value": {"start": start, "end": end, "text": text[start:end], "labels": [kind]}})
    # The task's score is its least sure span: the one that sent it to review.
    return {"score": min(scores, default=1.0), "result": result}


def task_payload(item: ReviewItem, *, entities: bool) -> dict:
    """The Label Studio task for ``item``: its text, fields, id and trace context as data, the model's answer as
    a prediction."""
    fields_text = " · ".join(f"{name}: {field_value_text(value)}" for name, value in item.fields.items())
    task: dict[str, Any] = {"data": {"text": item.text, ID_KEY: item.id, "fields_text": fields_text}}
    if item.trace:
        task["data"][TRACE_KEY] = item.trace
    prediction = (_entities_prediction(item.answer, item.text) if entities
                  else _classification_prediction(item.answer))
    if prediction is not None:
        task["predictions"] = [{"model_version": item.model, **prediction}]
    return task


def verdict_label(result: Any, *, entities: bool) -> str | list[dict] | None:
    """The verdict an annotation's ``result`` gives, as ``<task>.feedback``'s ``label``: the chosen class, or
    the spans ``{"type", "start", "end", "text"}`` in text order (entities; an empty list says "no entity").
    ``None`` when it holds no choice (classification), so nothing is published."""
    if not isinstance(result, list):
        return None
    if entities:
        spans = []
        for region in result:
            value = region.get("value") if isinstance(region, dict) else None
            if not isinstance(value, dict) or region.get("type") != "labels" or region.get("from_name") != CONTROL \
                    or not isinstance(value.get("labels"), list) or not value["labels"]:
                continue
            span = {"type": value["labels"][0], "start": value.get("start"), "end": value.get("end")}
            if isinstance(value.get("text"), str):
                span["text"] = value["text"]
            spans.append(span)
        # Offsets that are not integers stay as they came: `slm feedback export` counts such a verdict invalid.
        return sorted(spans, key=lambda s: (s["start"], s["end"]) if type(s["start"]) is int and type(s["end"]) is int
                      else (-1, -1))
    for region in result:
        if isinstance(region, dict) and region.get("type") == "choices" and region.get("from_name") == CONTROL:
            value = region.get("value")
            choices = value.get("choices") if isinstance(value, dict) else None
            if isinstance(choices, list) and choices and isinstance(choices[0], str):
                return choices[0]
    return None
