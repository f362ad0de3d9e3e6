"""slm compare's join, agreement, score distribution and feedback accuracy, on plain result dicts."""

from __future__ import annotations

from slm.compare import compare_answers, render


def _label(id_, label, score, model="m:1"):
    return {"id": id_, "model": model, "label": label, "score": score}


def _spans(id_, spans, model="m:1"):
    return {"id": id_, "model": model, "entities": [
        {"type": t, "start": s, "end": e, "text": "x", "score": score} for t, s, e, score in spans]}


def test_answers_join_by_id_and_agreement_counts_the_same_label():
    primary = [_label("a", "bullish", 0.9), _label("b", "bearish", 0.8), _label("c", "neutral", 0.6),
               _label("only-primary", "neutral", 0.5)]
    shadow = [_label("c", "neutral", 0.7, "m:2"), _label("a", "bullish", 0.95, "m:2"), _label("b", "neutral", 0.55, "m:2"),
              _label("only-shadow", "bearish", 0.4, "m:2")]
    c = compare_answers(primary, shadow)
    assert (c.joined, c.agreed, c.primary_only, c.shadow_only) == (3, 2, 1, 1)
    assert c.agreement == 2 / 3
    assert dict(c.primary.models) == {"m:1": 3} and dict(c.shadow.models) == {"m:2": 3}
    # Scores of the joined ids only.
    assert sorted(c.primary.scores) == [0.6, 0.8, 0.9]
    assert c.primary.quantiles() == {0.0: 0.6, 0.1: 0.6, 0.5: 0.8, 0.9: 0.9, 1.0: 0.9}
    assert c.shadow.histogram() == [0, 0, 0, 0, 0, 1, 0, 1, 0, 1]
    assert c.feedback is None


def test_the_last_answer_of_an_id_counts():
    # At least once: the first answer of "a" was delivered again after a reprocessing.
    primary = [_label("a", "bearish", 0.6), _label("a", "bullish", 0.9)]
    c = compare_answers(primary, [_label("a", "bullish", 0.8)])
    assert (c.joined, c.agreed, c.primary.scores) == (1, 1, [0.9])


def test_entities_agree_on_the_same_span_set_whatever_the_order_and_scores():
    primary = [_spans("a", [("PER", 0, 4, 0.9), ("ORG", 10, 14, 0.8)]), _spans("b", [("PER", 0, 4, 0.9)]),
               _spans("c", [])]
    shadow = [_spans("a", [("ORG", 10, 14, 0.5), ("PER", 0, 4, 0.99)]), _spans("b", [("ORG", 0, 4, 0.9)]),
              _spans("c", [])]
    c = compare_answers(primary, shadow)
    assert (c.joined, c.agreed) == (3, 2)
    assert len(c.primary.scores) == 3  # one per span


def test_accuracy_on_feedback_counts_joined_ids_with_a_usable_label():
    primary = [_label("a", "bullish", 0.9), _label("b", "bearish", 0.8), _label("c", "neutral", 0.6)]
    shadow = [_label("a", "bullish", 0.9), _label("b", "neutral", 0.8), _label("c", "bearish", 0.6)]
    feedback = [{"id": "a", "label": "bullish"}, {"id": "b", "label": "neutral"}, {"id": "b", "label": "bearish"},
                {"id": "c", "label": {"not": "a label"}}, {"label": "bullish"}, {"id": "elsewhere", "label": "x"}]
    c = compare_answers(primary, shadow, feedback)
    # a (both right) and b (last verdict bearish: the primary right); c's label is unusable.
    assert c.feedback == 2
    assert (c.primary.correct, c.shadow.correct) == (2, 1)
    text = "\n".join(render(c, ("t.results", "t.shadow.results")))
    assert "accuracy      primary 1.0000  shadow 0.5000" in text


def test_entity_feedback_is_a_span_list():
    c = compare_answers([_spans("a", [("PER", 0, 4, 0.9)])], [_spans("a", [("PER", 0, 5, 0.9)])],
                        [{"id": "a", "label": [{"type": "PER", "start": 0, "end": 4}]}])
    assert (c.feedback, c.primary.correct, c.shadow.correct) == (1, 1, 0)


def test_the_report_has_no_feedback_section_without_a_feedback_topic():
    c = compare_answers([_label("a", "bullish", 0.9, "p:1")], [_label("a", "bearish", 0.3, "s:2")])
    text = "\n".join(render(c, ("t.results", "t.shadow.results")))
    assert "agreement     0.0000 (0 of 1 the same answer)" in text
    assert "model         p:1 (1 answers)" in text and "model         s:2 (1 answers)" in text
    assert "feedback" not in text
    assert "n/a" in "\n".join(render(compare_answers([], []), ("t.results", "t.shadow.results")))
