"""A loaded model answers its folder's reference requests, compared with the stored answers
(:mod:`shared.runtime.reference_answers`): ``slm models verify --scores`` and every service at start."""

from __future__ import annotations

import logging
from pathlib import Path

from shared.errors import ModelError
from shared.processors import Received
from shared.runtime.reference_answers import (SCORE_TOLERANCE, AnswerCheck, answer_of, compare_answers,
                                              read_reference_answers)
from shared.schemas import TaskRequestV1

__all__ = ["check_reference_answers", "check_reference_at_start"]

logger = logging.getLogger(__name__)


def check_reference_answers(processor, reference: dict) -> AnswerCheck:
    """Answer ``reference``'s requests with ``processor`` (a loaded :class:`shared.processors.TaskProcessor`)
    and compare each answer with the stored one."""
    items = reference["items"]
    received = [Received.now(TaskRequestV1(**item["request"])) for item in items]
    check = AnswerCheck(len(items), measured_with=reference.get("measured_with", {}),
                        tolerance=reference.get("tolerance", SCORE_TOLERANCE))
    for k, (item, result) in enumerate(zip(items, processor.process(received), strict=True)):
        same, difference = compare_answers(item["answer"], answer_of(result))
        if not same:
            check.decisions_changed.append(k)
        check.largest_score_difference = max(check.largest_score_difference, difference)
    return check


def check_reference_at_start(processor, model_dir: Path, mode: str) -> None:
    """Answer the folder's reference requests and compare them with the stored answers (``SLM_REFERENCE_CHECK``).

    Raises:
        ModelError: the answers differ and ``mode`` is ``refuse``.
    """
    reference = None if mode == "off" else read_reference_answers(model_dir)
    if reference is None:
        return
    check = check_reference_answers(processor, reference)
    if check.ok:
        logger.info("reference check model=%s %s", processor.model_id, check.summary())
    elif mode == "refuse":
        raise ModelError(f"{model_dir}: {check.summary()}; SLM_REFERENCE_CHECK=refuse stops the service")
    else:
        logger.warning("reference check model=%s %s", processor.model_id, check.summary())
