"""slm compare's join, agreement, score distribution and feedback accuracy, on plain result dicts,
and the command over topic reads answered without a broker."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from click.testing import CliRunner
from slm.commands.compare_commands import compare_answers, render

from slm.cli import main

CLEAN = {"SLM_KAFKA_BOOTSTRAP": None, "SLM_KAFKA_TOPIC_PREFIX": None}


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


def test_values_that_are_no_result_are_skipped_and_counted():
    good = _label("a", "bullish", 0.9)
    malformed = [None, "not an object", [1], {"model": "m:1", "label": "x", "score": 0.5},  # no id
                 {"id": "b", "label": "x", "score": 0.5},  # no model
                 {"id": "b", "model": "m:1", "score": 0.5},  # no label
                 {"id": "b", "model": "m:1", "label": "x", "score": "high"},  # a score that is no number
                 {"id": "b", "model": "m:1", "entities": [{"start": 0, "end": 4, "score": 0.9}]},  # a span without type
                 {"id": "b", "model": "m:1", "entities": ["PER"]},
                 {"id": "b", "model": "m:1", "entities": 3}]
    # A malformed copy of "a" after a good one hides nothing: the good one still counts.
    c = compare_answers([good, *malformed, {"id": "a", "model": "m:1"}], [good, {"id": "a"}])
    assert (c.joined, c.agreed, c.primary_only) == (1, 1, 0)
    assert (c.primary_malformed, c.shadow_malformed) == (len(malformed) + 1, 1)
    text = "\n".join(render(c, ("t.results", "t.shadow.results")))
    assert f"skipped       {len(malformed) + 2} records that are no result ({len(malformed) + 1} on t.results, " \
           "1 on t.shadow.results)" in text


@dataclass
class _Record:
    value: bytes | None
    partition: int
    offset: int
    timestamp: int


def _encoded(value) -> bytes:
    return json.dumps(value).encode()


@pytest.fixture
def topics_read(monkeypatch):
    """compare_command's topic reads answered from ``topics_read[topic]`` (records), without a broker."""
    import shared.kafka.topic_reader

    content: dict[str, list[_Record]] = {}
    seen: list[dict] = []

    def read(options, topic, *, timeout_s):
        seen.append(options)
        return content.get(topic)

    monkeypatch.setattr(shared.kafka.topic_reader, "read_topic_or_none", read)
    content["options"] = seen
    return content


def test_compare_takes_the_last_answer_in_feedback_exports_order_and_reports_malformed_records(topics_read):
    # Two partitions: "a"'s later answer (by timestamp) is on partition 0, its earlier on partition 1.
    # Read partition by partition, the earlier would come last; merged by timestamp it does not.
    topics_read["p.sentiment.results"] = [
        _Record(_encoded(_label("a", "bullish", 0.9)), 0, 0, 200),
        _Record(b"not json", 0, 1, 210), _Record(None, 0, 2, 220),
        _Record(_encoded({"id": "a", "label": "bearish"}), 0, 3, 230),  # no model: skipped
        _Record(_encoded(_label("a", "bearish", 0.6)), 1, 0, 100)]
    topics_read["p.sentiment.shadow.results"] = [_Record(_encoded(_label("a", "bullish", 0.8, "m:2")), 0, 0, 150)]
    topics_read["p.sentiment.feedback"] = [_Record(_encoded({"id": "a", "label": "bullish"}), 0, 0, 300),
                                           _Record(_encoded({"id": "a", "label": "bearish"}), 1, 0, 250)]
    result = CliRunner().invoke(main, ["compare", "--task", "sentiment", "--bootstrap", "b:9092",
                                       "--topic-prefix", "p."], env=CLEAN)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert "agreement     1.0000 (1 of 1 the same answer)" in result.output
    assert "skipped       3 records that are no result (3 on p.sentiment.results, 0 on p.sentiment.shadow.results)" \
           in result.output
    assert "accuracy      primary 1.0000  shadow 1.0000" in result.output
    assert {options["bootstrap_servers"] for options in topics_read["options"]} == {"b:9092"}


def test_compare_takes_the_broker_and_the_prefix_from_the_environment(topics_read):
    topics_read["env.sentiment.results"] = topics_read["env.sentiment.shadow.results"] = [
        _Record(_encoded(_label("a", "bullish", 0.9)), 0, 0, 1)]
    env = {**CLEAN, "SLM_KAFKA_BOOTSTRAP": "env-broker:9092", "SLM_KAFKA_TOPIC_PREFIX": "env."}
    result = CliRunner().invoke(main, ["compare", "--task", "sentiment"], env=env)
    assert result.exit_code == 0, result.output
    assert "agreement     1.0000" in result.output
    assert {options["bootstrap_servers"] for options in topics_read["options"]} == {"env-broker:9092"}


def test_compare_without_a_broker_or_with_the_old_option_name_is_refused_in_one_line(topics_read):
    result = CliRunner().invoke(main, ["compare", "--task", "sentiment"], env=CLEAN)
    assert result.exit_code == 2 and "give --bootstrap or set SLM_KAFKA_BOOTSTRAP" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(main, ["compare", "--task", "sentiment", "--bootstrap", "b:9092", "--prefix", "p."],
                                env=CLEAN)
    assert result.exit_code == 2 and "No such option '--prefix'" in result.output
