"""Annotations into feedback records: which are published, in which order, and which never twice."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

from shared.review.verdicts import SOURCE, VerdictPublisher, feedback_record, latest_annotation, watermark_of


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
        return [t for t in self.tasks if updated_after is None or t["updated_at"] > updated_after]


def _publisher(tasks: list[dict], watermark: str | None = None) -> tuple[VerdictPublisher, list[dict]]:
    sent: list[dict] = []
    publisher = VerdictPublisher(FakeLabelStudio(tasks), 1, lambda key, value: sent.append(json.loads(value)),
                                 entities=False, sweep_interval_s=60, watermark=watermark)
    return publisher, sent


def test_the_latest_annotation_of_a_task_decides_and_a_skipped_one_publishes_nothing():
    task = {"data": {"slm_id": "a"}, "updated_at": "T3",
            "annotations": [_annotation(1, "bullish", "T1"), _annotation(2, "", "T2", cancelled=True)]}
    assert latest_annotation(task)["id"] == 2
    assert feedback_record(task["data"], latest_annotation(task), entities=False) is None
    assert feedback_record({"text": "no id"}, _annotation(1, "bullish", "T1"), entities=False) is None
    assert feedback_record({"slm_id": "a"}, _annotation(1, "bullish", "T1"), entities=False) == {
        "id": "a", "label": "bullish", "source": SOURCE, "annotation_id": 1, "annotated_at": "T1"}


def test_a_sweep_publishes_each_verdict_once_and_moves_its_watermark():
    tasks = [{"data": {"slm_id": "a"}, "updated_at": "2026-01-01T00:00:02Z",
              "annotations": [_annotation(1, "bullish", "2026-01-01T00:00:01Z")]},
             {"data": {"slm_id": "b"}, "updated_at": "2026-01-01T00:00:04Z",
              "annotations": [_annotation(2, "bearish", "2026-01-01T00:00:03Z")]}]
    publisher, sent = _publisher(tasks)
    stop = threading.Event()
    assert publisher.sweep(stop) == 2
    assert publisher.sweep(stop) == 0
    assert [(v["id"], v["label"]) for v in sent] == [("a", "bullish"), ("b", "bearish")]
    assert publisher.label_studio.asked_after == [None, "2026-01-01T00:00:04Z"]


def test_an_older_annotation_never_follows_a_newer_one_of_the_same_id():
    publisher, sent = _publisher([])
    stop = threading.Event()
    assert publisher._publish({"slm_id": "a"}, _annotation(1, "bearish", "T5"), stop)
    assert not publisher._publish({"slm_id": "a"}, _annotation(1, "bullish", "T4"), stop)  # a late webhook
    assert not publisher._publish({"slm_id": "a"}, _annotation(1, "bearish", "T5"), stop)  # the sweep again
    assert publisher._publish({"slm_id": "a"}, _annotation(1, "neutral", "T6"), stop)
    assert [v["label"] for v in sent] == ["bearish", "neutral"]


def test_after_a_restart_nothing_up_to_the_last_published_verdict_goes_out_again():
    tasks = [{"data": {"slm_id": "a"}, "updated_at": "T2", "annotations": [_annotation(1, "bullish", "T1")]},
             {"data": {"slm_id": "b"}, "updated_at": "T4", "annotations": [_annotation(2, "bearish", "T3")]}]
    publisher, sent = _publisher(tasks, watermark="T1")
    assert publisher.sweep(threading.Event()) == 1
    assert [v["id"] for v in sent] == ["b"]


@dataclass
class Record:
    value: bytes


def test_the_watermark_is_the_newest_verdict_this_bridge_published():
    records = [Record(json.dumps({"id": "a", "label": "x", "source": SOURCE, "annotated_at": "T2"}).encode()),
               Record(json.dumps({"id": "b", "label": "x", "annotated_at": "T9"}).encode()),  # typed by hand
               Record(b"not json"),
               Record(json.dumps({"id": "c", "label": "x", "source": SOURCE, "annotated_at": "T1"}).encode())]
    assert watermark_of(records) == "T2"
    assert watermark_of([]) is None
