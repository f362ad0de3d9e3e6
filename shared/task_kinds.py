"""The task-kind registry: which kind of model each task is, and what each kind loads and serves.

There are two kinds: ``classification`` (one label per item: transactions, helpdesk, sentiment)
and ``entities`` (IOB2 tags per token, decoded into character spans). A task's kind is fixed
here; a model folder names its own in ``slm_model.json`` (a customer model may be served under
another task). Whoever needs to tell the kinds apart asks this registry: the processors (which
runtime and processor serve a folder), the CLI (which options a task takes), the demo and the
benchmarks (what the model reads, how results are scored). The training recipe of each kind,
in ``pipelines/``, is found by the same :class:`TaskKind`.

The runtime and processor classes are named as ``module:Class`` and imported on first use, so
that asking which tasks exist (``slm --help``) loads no model code.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shared.errors import ConfigError, ModelError
from shared.model_text import model_text

__all__ = ["CLASSIFICATION", "ENTITIES", "KINDS", "TASKS", "TASK_KINDS", "TaskKind", "kind_named", "kind_of_task",
           "load_processor"]

logger = logging.getLogger(__name__)


def _class(path: str) -> type:
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def _label_counts(result: dict, gold: str) -> tuple[int, int, int]:
    return int(result["label"] == gold), 1, 1


def _span_counts(result: dict, gold: set) -> tuple[int, int, int]:
    found = {(e["type"], e["start"], e["end"]) for e in result["entities"]}
    return len(found & gold), len(found), len(gold)


@dataclass(frozen=True)
class TaskKind:
    """One kind of task model.

    Args:
        name (`str`): the kind as ``slm_model.json`` records it.
        runtime (`str`): ``module:Class`` of the ONNX Runtime model that loads a folder of this kind.
        processor (`str`): ``module:Class`` of the :class:`shared.processors.TaskProcessor` serving it.
        quality_metric (`str`): the headline metric of a result stream against its labels
            (``accuracy`` or entity ``f1``).
        reads_fields (`bool`): whether a request's extra ``fields`` are folded into the text the
            model reads (classification), or only the text is read (entities: offsets point into it).
        onnx_task (`str`): the ONNX export task of the kind's head.
        result_counts (`Callable[[dict, object], tuple[int, int, int]]`): a result (as the service
            returns it) against its gold answer: (right, predicted, gold). Summed over a stream,
            ``2 * right / (predicted + gold)`` is the quality metric (accuracy, or entity F1).
    """

    name: str
    runtime: str
    processor: str
    quality_metric: str
    reads_fields: bool
    onnx_task: str
    result_counts: Callable[[dict, object], tuple[int, int, int]]

    def load_model(self, model_dir: str | Path, **options):
        """The folder loaded into ONNX Runtime (``options``: the runtime class's keyword arguments)."""
        return _class(self.runtime)(model_dir, **options)

    def model_text(self, text: str, fields: dict, field_names) -> str:
        """What the model reads for a request's ``text`` and ``fields`` (``field_names``: the model's)."""
        return model_text(text, fields, field_names) if self.reads_fields else text


CLASSIFICATION = TaskKind(name="classification", runtime="shared.runtime:OnnxTextClassifier",
                          processor="shared.processors:ClassificationProcessor", quality_metric="accuracy",
                          reads_fields=True, onnx_task="text-classification", result_counts=_label_counts)
ENTITIES = TaskKind(name="entities", runtime="shared.runtime:OnnxEntityRecognizer",
                    processor="shared.processors:EntitiesProcessor", quality_metric="f1", reads_fields=False,
                    onnx_task="token-classification", result_counts=_span_counts)
KINDS = {kind.name: kind for kind in (CLASSIFICATION, ENTITIES)}
#: Every task, in the order they are listed everywhere, with its kind.
TASK_KINDS = {"transactions": CLASSIFICATION, "entities": ENTITIES, "helpdesk": CLASSIFICATION,
              "sentiment": CLASSIFICATION}
TASKS = tuple(TASK_KINDS)


def kind_of_task(task: str) -> TaskKind:
    """The kind of ``task``'s model.

    Raises:
        ConfigError: ``task`` is not one of :data:`TASKS`.
    """
    try:
        return TASK_KINDS[task]
    except KeyError:
        raise ConfigError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}") from None


def kind_named(name: str, where: object = "a model folder") -> TaskKind:
    """The kind a model folder records as ``name``.

    Raises:
        ModelError: no such kind (``where`` names the folder in the message).
    """
    try:
        return KINDS[name]
    except KeyError:
        raise ModelError(f"{where}: unknown model kind {name!r} (expected {' or '.join(KINDS)})") from None


def load_processor(task: str, model_dir, *, intra_op_threads: int = 0, max_batch_size: int = 64,
                   max_batch_tokens: int | None = None, review_threshold: float | None = None,
                   cache_size: int = 0):
    """The :class:`shared.processors.TaskProcessor` for the model folder's kind.

    ``max_batch_size`` and ``max_batch_tokens`` bound one ONNX Runtime run (texts, or the entity
    tagger's windows). The folder's files are checked against its manifest first: a changed,
    truncated, missing or extra file refuses the whole folder, and nothing is loaded.
    """
    from shared.runtime import open_model_folder

    info = open_model_folder(model_dir)
    if info.task != task:
        # A customer model trained for another task still serves, but say so: results name this task.
        logger.warning("model folder %s was trained as task %r, served as %r", model_dir, info.task, task)
    kind = kind_named(info.kind, model_dir)
    model = kind.load_model(model_dir, intra_op_threads=intra_op_threads, max_batch_size=max_batch_size,
                            max_batch_tokens=max_batch_tokens, info=info)
    return _class(kind.processor)(task, model, review_threshold, cache_size)
