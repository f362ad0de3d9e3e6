"""One Label Studio task per review record id: look up, import the missing ones, look up again."""

from __future__ import annotations

import pytest

from shared.review.label_studio import LabelStudioError
from shared.review.labelling import review_item
from shared.review.tasks_writer import TasksWriter


class FakeLabelStudio:
    def __init__(self, existing: set[str], drop: set[str] = frozenset()) -> None:
        self.ids = set(existing)
        self.drop = drop  # ids an import "accepts" but does not write
        self.imported: list[list[str]] = []

    def find_tasks(self, project: int, ids):
        return {item_id: n for n, item_id in enumerate(ids) if item_id in self.ids}

    def import_tasks(self, project: int, tasks) -> None:
        names = [task["data"]["slm_id"] for task in tasks]
        self.imported.append(names)
        self.ids |= set(names) - self.drop


def _items(*ids: str):
    return [review_item({"id": item_id, "label": "bullish", "score": 0.3, "input": {"text": "t"}}) for item_id in ids]


def test_only_the_ids_without_a_task_are_imported_once_each():
    studio = FakeLabelStudio(existing={"a"})
    writer = TasksWriter(studio, 1, entities=False)
    assert writer.write(_items("a", "b", "c", "b")) == 2
    assert studio.imported == [["b", "c"]]
    assert writer.write(_items("a", "b", "c")) == 0  # a replayed batch
    assert studio.imported == [["b", "c"]]


def test_a_batch_whose_imported_task_is_not_there_afterwards_is_not_written():
    writer = TasksWriter(FakeLabelStudio(existing=set(), drop={"b"}), 1, entities=False)
    with pytest.raises(LabelStudioError, match="1 of 2 imported tasks"):
        writer.write(_items("a", "b"))
