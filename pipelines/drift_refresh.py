"""Rewrite the drift reference of a folder trained before drift references existed (``slm drift reference``).

The folder names its kind, and the kind's recipe (:mod:`pipelines.kinds`) reads the labelled
file as training read its test file; the reference itself is written as training writes it
(:func:`pipelines.drift_reference.write_drift_reference`). Kept apart from that module because
training imports it: finding a recipe by kind would import every recipe from inside one.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.drift_reference import write_drift_reference
from pipelines.kinds import recipe_class
from shared.drift import REFERENCE_FILE, DriftReference
from shared.runtime import read_model_info, write_model_info
from shared.runtime.manifest import ModelIntegrityError, folder_problems
from shared.runtime.model_folder import INFO_FILE
from shared.task_kinds import kind_named

__all__ = ["refresh_drift_reference"]


def refresh_drift_reference(model_dir: Path, data_file: Path, *, split: str = "test") -> DriftReference:
    """(Re)write the drift reference of a folder trained without one (``slm drift reference``), and its manifest.

    Every other file is checked against the manifest first: the manifest is rewritten from the
    files as they are, so a changed file must refuse the folder here rather than be blessed.

    Raises:
        ModelIntegrityError: a file other than the reference does not match the manifest.
    """
    model_dir = Path(model_dir)
    info = read_model_info(model_dir)
    info.files.pop(REFERENCE_FILE, None)
    problems = [p for p in folder_problems(model_dir, INFO_FILE, info.files, info.optional_files)
                if p.path != model_dir / REFERENCE_FILE]
    if problems:
        raise ModelIntegrityError(f"model folder refused: {problems[0]}")
    (model_dir / REFERENCE_FILE).unlink(missing_ok=True)
    write_model_info(model_dir, info)  # the manifest without the reference, so that the processor loads
    reference = write_drift_reference(model_dir, recipe_class(kind_named(info.kind, model_dir)).for_model(info),
                                      data_file, split=split)
    write_model_info(model_dir, info)
    return reference
