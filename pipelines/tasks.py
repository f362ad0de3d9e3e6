"""The shipped data set of each task: files, columns and label names."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.common.data import ColumnMapping
from shared.errors import ConfigError
from shared.settings import REPO_ROOT

__all__ = ["CLASSIFICATION_TASKS", "ClassificationDataset", "EntityDataset", "TASKS", "data_dir", "dataset_for"]

TASKS = ("transactions", "entities", "helpdesk", "sentiment")
CLASSIFICATION_TASKS = ("transactions", "helpdesk", "sentiment")


def data_dir(task: str) -> Path:
    return REPO_ROOT / "data" / task


@dataclass(frozen=True)
class ClassificationDataset:
    """A task's default training data.

    Args:
        task (`str`): task name.
        train_file (`Path`): training file (a dev split is carved out of it).
        test_file (`Path`): held-out test file used by ``slm evaluate`` by default.
        columns (`ColumnMapping`): where text, label and fields are.
        label_names (`dict[str, str]`, defaults to `{}`): raw label -> name shown in results.
        training_defaults (`dict`, defaults to `{}`): TrainingArgs values that suit this data.
    """

    task: str
    train_file: Path
    test_file: Path
    columns: ColumnMapping
    label_names: dict[str, str] = field(default_factory=dict)
    training_defaults: dict = field(default_factory=dict)


@dataclass(frozen=True)
class EntityDataset:
    """A token-classification task's default data (CoNLL files).

    Args:
        task (`str`): task name.
        train_file (`Path`): training file (a dev split is carved out of it).
        test_file (`Path`): held-out test file used by ``slm evaluate`` by default.
        training_defaults (`dict`, defaults to `{}`): TrainingArgs values that suit this data.
        quick_defaults (`dict`, defaults to `{}`): ``--quick`` values that suit this data.
    """

    task: str
    train_file: Path
    test_file: Path
    training_defaults: dict = field(default_factory=dict)
    quick_defaults: dict = field(default_factory=dict)


def dataset_for(task: str) -> ClassificationDataset | EntityDataset:
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    return importlib.import_module(f"pipelines.{task}").DATASET
