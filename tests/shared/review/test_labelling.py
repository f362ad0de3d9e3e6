"""What the bridge writes into Label Studio and reads back, per task kind (no Label Studio needed)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from shared.review.labelling import (ID_KEY, NotReviewable, entity_types, label_config, review_item, task_payload,
                                     verdict_label)

TAGS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER", "B-ORG", "I-ORG"]


def test_a_classification_project_asks_for_exactly_one_of_the_models_classes():
    view = ET.fromstring(label_config(["bearish", "bullish", 'odd "quote" & <tag>'], entities=False))
    choices = view.find("Choices")
    assert choices.get("choice") == "single" and choices.get("required") == "true"
    assert [c.get("value") for c in choices] == ["bearish", "bullish", 'odd "quote" & <tag>']


def test_an_entities_project_offers_span_labels_of_the_models_entity_types():
    view = ET.fromstring(label_config(TAGS, entities=True))
    assert [label.get("value") for label in view.find("Labels")] == ["LOC", "PER", "ORG"]
    assert entity_types(TAGS) == ["LOC", "PER", "ORG"]


def test_a_classification_task_carries_the_id_the_fields_and_the_answer_with_its_score():
    item = review_item({"id": "a", "model": "m:1", "label": "bullish", "score": 0.42,
                        "input": {"text": "up", "fields": {"amount": 20.0, "vip": True}}})
    task = task_payload(item, entities=False)
    assert task["data"] == {"text": "up", ID_KEY: "a", "fields_text": "amount: 20 · vip: true"}
    (prediction,) = task["predictions"]
    assert prediction["model_version"] == "m:1" and prediction["score"] == 0.42
    assert verdict_label(prediction["result"], entities=False) == "bullish"


def test_an_entities_task_predicts_the_spans_and_scores_its_least_sure_one():
    text = "Ada Lovelace met Babbage"
    item = review_item({"id": "b", "model": "m:1", "input": {"text": text},
                        "entities": [{"type": "PER", "start": 0, "end": 12, "score": 0.9},
                                     {"type": "PER", "start": 17, "end": 24, "score": 0.3},
                                     {"type": "PER", "start": 20, "end": 99, "score": 0.1}]})
    (prediction,) = task_payload(item, entities=True)["predictions"]
    assert prediction["score"] == 0.3  # the span outside the text is left out
    assert [r["value"]["text"] for r in prediction["result"]] == ["Ada Lovelace", "Babbage"]
    assert verdict_label(prediction["result"], entities=True) == [
        {"type": "PER", "start": 0, "end": 12, "text": "Ada Lovelace"},
        {"type": "PER", "start": 17, "end": 24, "text": "Babbage"}]


@pytest.mark.parametrize("payload, reason", [
    ([1, 2], "not a JSON object"),
    ({"input": {"text": "Private text"}}, "id missing"),
    ({"id": "a", "label": "Private text"}, "no input"),
    ({"id": "a", "input": {"text": "Private text", "fields": [1]}}, "fields is not an object"),
])
def test_a_record_that_cannot_become_a_task_says_why_without_its_text(payload, reason):
    with pytest.raises(NotReviewable, match=reason) as caught:
        review_item(payload)
    assert "Private" not in str(caught.value)


def test_an_annotation_without_a_choice_gives_no_verdict_and_one_without_spans_says_no_entity():
    assert verdict_label([], entities=False) is None
    assert verdict_label([{"type": "textarea", "from_name": "note", "value": {"text": ["x"]}}], entities=False) is None
    assert verdict_label([], entities=True) == []


def test_malformed_answers_and_annotations_give_what_they_can_never_an_exception():
    item = review_item({"id": "c", "input": {"text": "abc"}, "entities": ["x", {"start": 0, "end": 2, "type": "PER",
                                                                               "score": None}]})
    (prediction,) = task_payload(item, entities=True)["predictions"]
    assert [r["value"]["text"] for r in prediction["result"]] == ["ab"] and prediction["score"] == 0.0
    assert verdict_label(["x", {"type": "labels", "from_name": "label", "value": "y"},
                          {"type": "labels", "from_name": "label", "value": {"labels": ["PER"], "start": 5}}],
                         entities=True) == [{"type": "PER", "start": 5, "end": None}]
    assert verdict_label([{"type": "choices", "from_name": "label", "value": {"choices": [3]}}], entities=False) is None
