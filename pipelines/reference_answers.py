"""A model folder's reference answers (:mod:`shared.runtime.reference_answers`) from a labelled file.

Training writes them from its test file once the folder is built (:func:`pipelines.recipe.train_model`),
where the card's figures are measured; ``slm models reference`` writes them for a folder trained
before (:mod:`pipelines.reference_refresh`). The rows are read as the drift reference reads them,
answered by the service's processor, and stored with the runtime facts of this machine.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from pipelines.common.model_output import file_sha256, recorded_path
from pipelines.drift_reference import reference_requests
from shared.processors import Received
from shared.runtime.reference_answers import REFERENCE_ANSWERS_FILE, SCORE_TOLERANCE, answer_of, runtime_facts

__all__ = ["REFERENCE_ITEMS", "write_reference_answers"]

logger = logging.getLogger(__name__)

# Enough rows that a kernel which moves scores shows on several of them; few enough to check in a
# fraction of a second as a service loads.
REFERENCE_ITEMS = 32
# A classification's highest scores are what moves when a kernel does (transactions has 124 labels).
TOP_SCORES = 5
SCORE_DIGITS = 6


def write_reference_answers(model_dir: Path, recipe, data_file: Path, *, split: str = "test",
                            limit: int = REFERENCE_ITEMS, seed: int = 42) -> dict:
    """Answer ``limit`` rows of ``data_file`` with ``model_dir``'s processor; write ``reference_answers.json``.

    The folder's manifest must be valid before (the processor checks it) and is *not* rewritten:
    the caller does that (:func:`shared.runtime.write_model_info`).
    """
    from shared.runtime import read_model_info
    from shared.task_kinds import load_processor

    info = read_model_info(model_dir)
    requests = reference_requests(recipe, data_file, limit=limit, seed=seed)
    processor = load_processor(info.task, model_dir, cache_size=0)
    results = processor.process([Received.now(request) for request in requests])
    reference = {
        "model": info.model_id,
        "source": {"file": recorded_path(Path(data_file)), "sha256": file_sha256(Path(data_file)), "split": split,
                   "rows": len(requests), "seed": seed},
        "measured_with": runtime_facts(),
        "tolerance": SCORE_TOLERANCE,
        "items": [{"request": request.model_dump(exclude_none=True, exclude_defaults=True),
                   "answer": answer_of(result, top=TOP_SCORES, digits=SCORE_DIGITS)}
                  for request, result in zip(requests, results, strict=True)],
    }
    path = Path(model_dir) / REFERENCE_ANSWERS_FILE
    path.write_text(json.dumps(reference, indent=1, ensure_ascii=False) + "\n")
    logger.info('reference answers written model=%s items=%d file="%s"', info.model_id, len(requests), path)
    return reference
