"""A model folder's drift reference (:mod:`shared.drift`) from a labelled file, computed with the model as served.

Training writes it from its test file once the folder is built (:func:`pipelines.recipe.train_model`);
``slm drift reference`` writes it for a folder trained before drift references existed (the shipped
models) and rewrites the manifest. The file's rows become requests as the service receives them,
the service's processor answers them, and the answers are binned as the service's monitor bins
its window: the reference and the window measure the same thing by the same code.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

from pydantic import ValidationError

from pipelines.common.data import ColumnMapping
from pipelines.common.model_output import file_sha256, recorded_path
from pipelines.tasks import TaskDataset
from shared.drift import REFERENCE_FILE, DriftReference, answer_features, build_reference
from shared.errors import DataError
from shared.processors import Received
from shared.schemas import TaskRequestV1

__all__ = ["reference_requests", "refresh_drift_reference", "write_drift_reference"]

logger = logging.getLogger(__name__)

CHUNK = 64


def reference_requests(recipe, data_file: Path, *, limit: int | None = None, seed: int = 42) -> list[TaskRequestV1]:
    """The rows of ``data_file`` as requests, read as ``recipe`` reads its test file (its columns; for
    entities, each sentence's text); at most ``limit`` of them, sampled with ``seed`` as training
    subsamples its test split. Rows a service would refuse (blank text) are left out."""
    dataset = TaskDataset(task="", train_file=Path(data_file), test_file=Path(data_file),
                          columns=getattr(recipe, "column_mapping", ColumnMapping()))
    rows, _gold = recipe.request_rows(dataset, None)
    if limit is not None and len(rows) > limit:
        rows = random.Random(seed).sample(rows, limit)
    requests = []
    for row in rows:
        try:
            requests.append(TaskRequestV1(**row))
        except ValidationError:
            continue
    if not requests:
        raise DataError(f"{data_file}: no row gives a valid request to build the drift reference from")
    return requests


def write_drift_reference(model_dir: Path, recipe, data_file: Path, *, split: str = "test",
                          limit: int | None = None, seed: int = 42) -> DriftReference:
    """Answer ``data_file``'s rows with ``model_dir``'s processor and write ``drift_reference.json`` there.

    The folder's manifest must be valid before (the processor checks it) and is *not* rewritten:
    the caller does that (:func:`shared.runtime.write_model_info`).
    """
    from shared.runtime import read_model_info
    from shared.task_kinds import load_processor

    info = read_model_info(model_dir)
    requests = reference_requests(recipe, data_file, limit=limit, seed=seed)
    processor = load_processor(info.task, model_dir, cache_size=0)
    answers = []
    for start in range(0, len(requests), CHUNK):
        items = [Received.now(r) for r in requests[start:start + CHUNK]]
        for item, result in zip(items, processor.process(items)):
            features = answer_features(result, item.request.text)
            if features is not None:
                answers.append(features)
    source = {"file": recorded_path(Path(data_file)), "sha256": file_sha256(Path(data_file)), "split": split,
              "rows": len(requests)}
    reference = build_reference(info.task, info.model_id, answers, source)
    path = reference.write(model_dir)
    logger.info('drift reference written model=%s items=%d file="%s"', info.model_id, reference.items, path)
    return reference


def refresh_drift_reference(model_dir: Path, data_file: Path, *, split: str = "test") -> DriftReference:
    """(Re)write the drift reference of a folder trained without one (``slm drift reference``), and its manifest.

    Every other file is checked against the manifest first: the manifest is rewritten from the
    files as they are, so a changed file must refuse the folder here rather than be blessed.

    Raises:
        ModelIntegrityError: a file other than the reference does not match the manifest.
    """
    from pipelines.kinds import recipe_class
    from shared.runtime import read_model_info, write_model_info
    from shared.runtime.manifest import ModelIntegrityError, folder_problems
    from shared.runtime.model_folder import INFO_FILE
    from shared.task_kinds import kind_named

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
