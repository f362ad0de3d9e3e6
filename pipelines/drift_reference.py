"""A model folder's drift reference (:mod:`shared.drift`) from a labelled file, computed with the model as served.

Training writes it from its test file once the folder is built (:func:`pipelines.recipe.train_model`);
``slm drift reference`` writes it for a folder trained before drift references existed (the shipped
models) and rewrites the manifest (:mod:`pipelines.reference_refresh`). The file's rows become requests as
the service receives them, the service's processor answers them, and the answers are binned as the
service's monitor bins its window: the reference and the window measure the same thing by the same code.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

from pydantic import ValidationError

from pipelines.common.data import ColumnMapping
from pipelines.common.model_output import file_sha256, recorded_path
from pipelines.tasks import TaskDataset
from shared.drift import DriftReference, answer_features, build_reference
from shared.errors import DataError
from shared.processors import Received
from shared.schemas import TaskRequestV1

__all__ = ["reference_requests", "write_drift_reference"]

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
