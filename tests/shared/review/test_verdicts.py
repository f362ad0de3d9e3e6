"""Annotations into feedback records: which are published, in which order, and which never twice."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime, timezone

from shared.review.verdicts import SOURCE, VerdictPublisher, feedback_record, instant, latest_annotation, published_of


def _at(second: int, micro: int = 0) -> str:
    """A time as Label Studio writes it: without the fraction when it is zero."""
    moment = datetime(2026, 1, 1, 0, 0, second, micro, tzinfo=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if micro else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _annotation(number: int, label: str, at: str, cancelled: bool = False) -> dict:
    result = [] if cancelled else [{"from_name": "label", "to_name": "text", "type": "choices",
                                    "value": {"choices": [label]}}]
    return {"id": number, "result": result, "was_cancelled": cancelled, "updated_at": at}


class FakeLabelStudio:
    def __init__(self, tasks: list[dict]) -> None:
        self.tasks = tasks
        self.asked_after: list[str | None] = []

    def annotated_tasks(self, project: int, updated_after: str | None):
        self.asked_after.append(updated_after)
        return [t for t in self.tasks if updated_after is None or instant(t["updated_at"]) > instant(updated_after)]


def _publisher(tasks: list[dict], published: dict | None = None,
               oldest: datetime | None = None) -> tuple[VerdictPublisher, list[dict]]:
    sent: list[dict] = []
    publisher = VerdictPublisher(FakeLabelStudio(tasks), 1, lambda key, value, headers: sent.append(json.loads(value)),
                                 entities=False, task="sentiment", topic="sentiment.feedback", sweep_interval_s=60,
                                 published=published, oldest=oldest)
    return publisher, sent


def test_the_newest_annotation_that_is_not_skipped_decides():
    task = {"data": {"slm_id": "a"}, "updated_at": _at(3),
            "annotations": [_annotation(1, "bullish", _at(1)), _annotation(2, "", _at(2), cancelled=True)]}
    assert latest_annotation(task)["id"] == 1  # a second reviewer's skip takes nothing back
    assert feedback_record(task["data"], _annotation(2, "", _at(2), cancelled=True), entities=False) is None
    assert feedback_record({"text": "no id"}, _annotation(1, "bullish", _at(1)), entities=False) is None
    assert feedback_record({"slm_id": "a"}, _annotation(1, "bullish", _at(1)), entities=False) == {
        "id": "a", "label": "bullish", "source": SOURCE, "annotation_id": 1, "annotated_at": _at(1)}


def test_times_with_and_without_a_fraction_compare_as_times():
    assert instant(_at(1)) < instant(_at(1, 500)) < instant(_at(2))
    assert instant("not a time") is None and instant(None) is None


def test_a_sweep_publishes_each_verdict_once_and_asks_label_studio_in_the_format_it_parses():
    tasks = [{"data": {"slm_id": "a"}, "updated_at": _at(2), "annotations": [_annotation(1, "bullish", _at(1))]},
             {"data": {"slm_id": "b"}, "updated_at": _at(4, 250), "annotations": [_annotation(2, "bearish", _at(3))]}]
    publisher, sent = _publisher(tasks)
    stop = threading.Event()
    assert publisher.sweep(stop) == 2
    assert publisher.sweep(stop) == 0  # the overlap reads both again; neither goes out twice
    assert [(v["id"], v["label"]) for v in sent] == [("a", "bullish"), ("b", "bearish")]
    assert publisher.label_studio.asked_after == [None, "2025-12-31T23:59:04.000250Z"]


def test_an_older_annotation_never_follows_a_newer_one_of_the_same_id():
    publisher, sent = _publisher([])
    stop = threading.Event()
    assert publisher._publish({"slm_id": "a"}, _annotation(1, "bearish", _at(5)), stop)
    assert not publisher._publish({"slm_id": "a"}, _annotation(1, "bullish", _at(4)), stop)  # a late webhook
    assert not publisher._publish({"slm_id": "a"}, _annotation(1, "bearish", _at(5)), stop)  # the sweep again
    assert publisher._publish({"slm_id": "a"}, _annotation(1, "neutral", _at(6)), stop)
    assert [v["label"] for v in sent] == ["bearish", "neutral"]


@dataclass
class Record:
    value: bytes


def _record(item_id: str, at: str, source: str | None = SOURCE) -> Record:
    return Record(json.dumps({"id": item_id, "label": "x", "annotated_at": at,
                              **({"source": source} if source else {})}).encode())


def test_after_a_restart_what_was_published_is_known_by_id_and_an_older_miss_still_goes_out():
    # b's verdict went out before the restart; a's webhook was missed although it is older.
    tasks = [{"data": {"slm_id": "a"}, "updated_at": _at(2), "annotations": [_annotation(1, "bullish", _at(1))]},
             {"data": {"slm_id": "b"}, "updated_at": _at(4), "annotations": [_annotation(2, "bearish", _at(3))]}]
    publisher, sent = _publisher(tasks, published=published_of([_record("b", _at(3))]))
    assert publisher.sweep(threading.Event()) == 1
    assert [v["id"] for v in sent] == ["a"]


def test_nothing_older_than_the_feedback_topics_retention_is_published_again():
    # a was annotated before the oldest time the topic still holds; b's task changed later, its annotation did not.
    tasks = [{"data": {"slm_id": "a"}, "updated_at": _at(2), "annotations": [_annotation(1, "bullish", _at(1))]},
             {"data": {"slm_id": "b"}, "updated_at": _at(9), "annotations": [_annotation(2, "bearish", _at(3))]},
             {"data": {"slm_id": "c"}, "updated_at": _at(6), "annotations": [_annotation(3, "neutral", _at(5))]}]
    publisher, sent = _publisher(tasks, oldest=instant(_at(4)))
    assert publisher.sweep(threading.Event()) == 1
    assert [v["id"] for v in sent] == ["c"]
    assert publisher.label_studio.asked_after == ["2026-01-01T00:00:04.000000Z"]
    assert not publisher._publish({"slm_id": "d"}, _annotation(4, "bullish", _at(3)), threading.Event())  # a webhook


def test_published_keeps_each_ids_newest_verdict_of_this_bridge_only():
    records = [_record("a", _at(2)), _record("a", _at(1)), _record("b", _at(9), source=None),  # typed by hand
               Record(b"not json"), _record("c", "garbled")]
    assert published_of(records) == {"a": instant(_at(2))}
