"""The shipped data set of each task: files, columns, label names and the training values that suit it."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.common.data import ColumnMapping
from shared.settings import REPO_ROOT
from shared.task_kinds import TASKS, kind_of_task

__all__ = ["TASKS", "TaskDataset", "data_dir", "dataset_for"]


def data_dir(task: str) -> Path:
    return REPO_ROOT / "data" / task


@dataclass(frozen=True)
class TaskDataset:
    """A task's default data.

    Args:
        task (`str`): task name.
        train_file (`Path`): training file (a dev split is carved out of it).
        test_file (`Path`): held-out test file used by ``slm evaluate`` by default.
        columns (`ColumnMapping`, defaults to the default mapping): where text, label and fields are
            (classification files; CoNLL files have no columns).
        label_names (`dict[str, str]`, defaults to `{}`): raw label -> name shown in results.
        training_defaults (`dict`, defaults to `{}`): TrainingArgs values that suit this data.
        quick_defaults (`dict`, defaults to `{}`): ``--quick`` values that suit this data.
    """

    task: str
    train_file: Path
    test_file: Path
    columns: ColumnMapping = field(default_factory=ColumnMapping)
    label_names: dict[str, str] = field(default_factory=dict)
    training_defaults: dict = field(default_factory=dict)
    quick_defaults: dict = field(default_factory=dict)

    @classmethod
    def shipped(cls, task: str, train: str, test: str, **values) -> TaskDataset:
        """The data set the repository ships for ``task``: ``train`` and ``test`` are file names in
        :func:`data_dir` of the task; ``values`` the other fields."""
        return cls(task=task, train_file=data_dir(task) / train, test_file=data_dir(task) / test, **values)


def dataset_for(task: str) -> TaskDataset:
    kind_of_task(task)  # an unknown task is refused by the registry, in one line
    return importlib.import_module(f"pipelines.{task}").DATASET
