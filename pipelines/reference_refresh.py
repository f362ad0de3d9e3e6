"""Rewrite a reference file of a folder trained before training wrote it: the drift reference
(``slm drift reference``) or the reference answers (``slm models reference``), then its manifest.

The folder names its kind, and the kind's recipe (:mod:`pipelines.kinds`) reads the labelled
file as training read its test file; each file is written as training writes it. Kept apart from
the writers because training imports them: finding a recipe by kind would import every recipe
from inside one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pipelines.drift_reference import write_drift_reference
from pipelines.kinds import recipe_class
from pipelines.reference_answers import write_reference_answers
from shared.drift import REFERENCE_FILE, DriftReference
from shared.runtime import read_model_info, write_model_info
from shared.runtime.manifest import ModelIntegrityError, folder_problems
from shared.runtime.model_folder import INFO_FILE
from shared.runtime.reference_answers import REFERENCE_ANSWERS_FILE
from shared.task_kinds import kind_named

__all__ = ["refresh_drift_reference", "refresh_reference_answers"]

Written = TypeVar("Written")


def _refresh(model_dir: Path, file_name: str, write: Callable[[Path, object], Written]) -> Written:
    """(Re)write ``model_dir/file_name`` by ``write(model_dir, recipe)``, and the manifest.

    Every other file is checked against the manifest first: the manifest is rewritten from the
    files as they are, so a changed file must refuse the folder here rather than be blessed.

    Raises:
        ModelIntegrityError: a file other than ``file_name`` does not match the manifest.
    """
    model_dir = Path(model_dir)
    info = read_model_info(model_dir)
    info.files.pop(file_name, None)
    problems = [p for p in folder_problems(model_dir, INFO_FILE, info.files, info.optional_files)
                if p.path != model_dir / file_name]
    if problems:
        raise ModelIntegrityError(f"model folder refused: {problems[0]}")
    (model_dir / file_name).unlink(missing_ok=True)
    write_model_info(model_dir, info)  # the manifest without the file, so that the processor loads
    written = write(model_dir, recipe_class(kind_named(info.kind, model_dir)).for_model(info))
    write_model_info(model_dir, info)
    return written


def refresh_drift_reference(model_dir: Path, data_file: Path, *, split: str = "test") -> DriftReference:
    """(Re)write the drift reference of a folder trained without one (``slm drift reference``), and its manifest."""
    return _refresh(model_dir, REFERENCE_FILE,
                    lambda folder, recipe: write_drift_reference(folder, recipe, data_file, split=split))


def refresh_reference_answers(model_dir: Path, data_file: Path, *, split: str = "test") -> dict:
    """(Re)write the reference answers of a folder (``slm models reference``), and its manifest."""
    return _refresh(model_dir, REFERENCE_ANSWERS_FILE,
                    lambda folder, recipe: write_reference_answers(folder, recipe, data_file, split=split))
