"""The one recipe every task kind is trained and evaluated by.

``slm train <task>`` runs :func:`train_model`: read the labelled files, carve the dev split,
subsample, fine-tune, export the fp32 graph, choose the served graph (int8 where it keeps the
fp32 model's answers on dev, :mod:`pipelines.common.quantize`), pick the review threshold on
dev, score dev and test, write the card, and write ``slm_model.json`` once, at the end.
``slm evaluate`` runs :func:`evaluate_model`.

The kind (:class:`KindRecipe`: :mod:`pipelines.classification`, :mod:`pipelines.token_classification`)
supplies what differs: its data reader, its model head, its metrics and its decoder, the way
SetFit's span-level task reuses its core trainer with its own data and model.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pipelines.common.args import TrainingArgs
from pipelines.common.base_model import BASE_MODEL_NAME
from pipelines.common.card import write_card
from pipelines.common.data import ColumnChoice, split_dev
from pipelines.common.export import FP32_FILE, cpu_quantization_preset, export_fp32
from pipelines.common.model_output import (REVIEW_THRESHOLD_BOUNDS, building, code_provenance, data_provenance,
                                           evaluation_card_dir, pick_review_threshold, subsample)
from pipelines.common.quantize import choose_served_graph
from pipelines.common.scores import ClassificationScores, Evaluation, ModelMetrics, Scores, SplitMetrics
from pipelines.common.training import TrainedModel
from pipelines.feedback_merge import FeedbackCounts, replace_reviewed
from pipelines.tasks import TaskDataset
from shared.errors import DataError
from shared.runtime import ModelInfo, read_model_info, write_model_info
from shared.runtime.reference_answers import runtime_facts
from shared.task_kinds import TaskKind

__all__ = ["KindRecipe", "TrainedFolder", "TrainingData", "evaluate_model", "read_training_data", "train_model"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingData:
    """A training run's items, split, subsampled and ready for the model.

    Args:
        labels (`list[str]`): the output labels, in logit order.
        train / dev / test (`list`): what the model reads for each split.
        as_read (`tuple[list, list]`): the training and test items as read (the TF-IDF baseline reads them).
        record (`dict`): the kind's entries of the model's training record (label names, entity types...).
        feedback (`FeedbackCounts`): what the feedback files replaced (:mod:`pipelines.feedback_merge`).
    """

    labels: list[str]
    train: list
    dev: list
    test: list
    as_read: tuple[list, list]
    record: dict
    feedback: FeedbackCounts = FeedbackCounts()


class KindRecipe(Protocol):
    """What a task kind brings to the recipe.

    Attributes:
        kind (`TaskKind`): the kind in the registry (its runtime, its export task).
        scores (`type`): the kind's scores (:mod:`pipelines.common.scores`).
        columns (`dict`): the column mapping recorded with the model (``{}`` for files without columns).
        stratify (`Callable | None`): the label of an item, to stratify the dev split; ``None``: a plain shuffle.
        same_input (`Callable`): an item's input as a string: a feedback item replaces the training items
            whose string is its own (:mod:`pipelines.feedback_merge`).
        document (`Callable | None`): the document of an item, whose items' ``same_input`` joined are the
            document's input; ``None``: items stand alone.
        calibration_items (`int`): training items whose activations calibrate static int8.
        calibration_record (`str`): the quantization record's name for their count.
        unit (`str`): what an item is called in messages (``rows``, ``sentences``).
        min_items_to_split (`int`): fewer training items than this cannot give a dev split.
    """

    kind: TaskKind
    scores: type[Scores]
    columns: dict
    stratify: Callable[[Any], str] | None
    same_input: Callable[[Any], str]
    document: Callable[[Any], Any] | None
    calibration_items: int
    calibration_record: str
    unit: str
    min_items_to_split: int

    @staticmethod
    def request_rows(dataset: TaskDataset, limit: int | None) -> tuple[list[dict], list]:
        """The first ``limit`` rows of the data set's test file as request values, and each one's gold
        answer as :attr:`shared.task_kinds.TaskKind.result_counts` reads it."""

    def read(self, path: Path, args: TrainingArgs) -> list:
        """The labelled items of one file (:class:`shared.errors.DataError` naming file and line)."""

    def prepare(self, train: list, dev: list, test: list, files: Sequence[Path | None]) -> TrainingData:
        """The label set, the model inputs of each split and the kind's record (``files``: train, eval, dev,
        then any further training and feedback files)."""

    def fine_tune(self, data: TrainingData, args: TrainingArgs, checkpoint_dir: Path) -> TrainedModel:
        """The kind's head on the base encoder, fine-tuned; the best dev epoch saved in ``checkpoint_dir``."""

    def predict(self, model, items: Sequence, desc: str) -> Any:
        """The runtime ``model``'s predictions for ``items`` (decoded as the service decodes them)."""

    def agreement(self, reference, candidate) -> float:
        """How closely ``candidate`` predictions keep the ``reference`` (fp32) ones: 1.0 when alike."""

    def calibration_batches(self, model, items: Sequence) -> list[dict[str, np.ndarray]]:
        """Input batches of ``items`` as the service feeds them to ``model``."""

    def review_evidence(self, items: Sequence, predictions, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Each scored result's score, and whether it was right: what the review threshold is picked on."""

    def dev_scores(self, items: Sequence, predictions, labels: Sequence[str]) -> Scores:
        """Scores of ``predictions`` against the dev items' gold."""

    def test_scores(self, items: Sequence, predictions, model_labels: Sequence[str]) -> Scores:
        """Scores of ``predictions`` against the test items' gold (labels only the test file has count as misses)."""

    def item_scores(self, model, items: Sequence) -> np.ndarray:
        """The model's raw scores of ``items`` (class, or per-token tag, probabilities), flattened: to compare runs."""

    def baseline(self, data: TrainingData, args: TrainingArgs) -> ClassificationScores | None:
        """A classic baseline's test scores, when the kind has one and ``args`` ask for it."""

    def evaluate(self, model_dir: Path, info: ModelInfo, data_file: Path) -> Evaluation:
        """A model folder's scores on ``data_file`` (``card`` left unset)."""

    @classmethod
    def for_training(cls, columns: ColumnChoice, *, baseline: bool, dataset: TaskDataset | None) -> KindRecipe:
        """The recipe for a training on ``dataset`` (``None``: a customer's files) with the named
        columns and ``--baseline``; a :class:`shared.errors.ConfigError` for options the kind has not."""

    @classmethod
    def for_evaluation(cls, info: ModelInfo, columns: ColumnChoice, *, baseline: bool,
                       baseline_train: Path | None) -> KindRecipe:
        """The recipe for ``slm evaluate`` of ``info``'s model, with the same options."""

    @classmethod
    def for_model(cls, info: ModelInfo) -> KindRecipe:
        """The recipe that reads files as ``info``'s model was trained on them."""


@dataclass(frozen=True)
class TrainedFolder:
    """What :func:`train_model` wrote: the model's description and its metrics, typed, and what the
    feedback files replaced in the training data."""

    info: ModelInfo
    metrics: ModelMetrics
    feedback: FeedbackCounts = FeedbackCounts()


def _paths(files: Path | Sequence[Path]) -> list[Path]:
    return [Path(files)] if isinstance(files, (str, Path)) else [Path(f) for f in files]


def read_training_data(recipe: KindRecipe, train_file: Path | Sequence[Path], args: TrainingArgs, *,
                       dev_file: Path | None = None, eval_file: Path | None = None,
                       feedback_files: Sequence[Path] = ()) -> TrainingData:
    """Read, carve the dev split (unless ``dev_file`` is given), subsample, and prepare for the model.

    ``train_file`` may be several files, read as one. ``feedback_files`` (``slm feedback export``) join
    the training items after the split and the subsample: every reviewed correction is trained on,
    none is held out as dev or dropped by ``--quick``'s cap. A verdict replaces the items of the
    training files with the same input, before the split (:mod:`pipelines.feedback_merge`); ``dev_file``
    and ``eval_file`` are scored as given.
    """
    train_files = _paths(train_file)
    train_file = train_files[0]  # names the training data in messages
    merged = replace_reviewed([recipe.read(path, args) for path in train_files],
                              [item for path in feedback_files for item in recipe.read(Path(path), args)],
                              recipe.same_input, recipe.document)
    if feedback_files:
        logger.info("feedback replaced %d training %s; %d feedback %s gave way to a later verdict on the same input",
                    merged.counts.replaced, recipe.unit, merged.counts.superseded, recipe.unit)
    train = merged.original
    if dev_file is not None:
        dev = recipe.read(dev_file, args)
    else:
        if len(train) < recipe.min_items_to_split:
            raise DataError(f"{train_file}: {len(train)} {recipe.unit} are too few to carve out a dev split; "
                            "pass a dev file")
        train, dev = split_dev(train, args.dev_fraction, args.seed, stratify=recipe.stratify)
    if not dev:
        raise DataError(f"{train_file}: too few {recipe.unit} to carve out a dev split; pass a dev file")
    test = recipe.read(eval_file, args) if eval_file else []
    train = subsample(train, args.max_train_examples, args.seed)
    train += merged.feedback
    dev = subsample(dev, args.max_dev_examples, args.seed)
    test = subsample(test, args.max_test_examples, args.seed)
    data = recipe.prepare(train, dev, test, (train_file, eval_file, dev_file, *train_files[1:], *feedback_files))
    return replace(data, feedback=merged.counts)


def train_model(recipe: KindRecipe, task: str, train_file: Path | Sequence[Path], out_dir: Path, args: TrainingArgs, *,
                eval_file: Path | None = None, dev_file: Path | None = None,
                model_name: str | None = None, feedback_files: Sequence[Path] = ()) -> TrainedFolder:
    """Fine-tune, export, quantize and evaluate; the model folder appears at ``out_dir`` only when all passed.

    ``train_file`` may be several files; ``feedback_files`` are trained on whole, in place of the training
    items with the same input (:func:`read_training_data`).
    """
    started = time.perf_counter()
    train_files = _paths(train_file)
    train_file = train_files[0]
    data = read_training_data(recipe, train_files, args, dev_file=dev_file, eval_file=eval_file,
                              feedback_files=feedback_files)
    logger.info("task=%s train=%d dev=%d test=%d labels=%d", task, len(data.train), len(data.dev), len(data.test),
                len(data.labels))
    record = {"base_model": BASE_MODEL_NAME, "code": code_provenance(), "args": args.to_dict(), **data.record,
              "data": data_provenance(train_file, len(data.train), dev_file, len(data.dev), eval_file,
                                      more_train=train_files[1:], feedback=feedback_files)}
    if feedback_files:
        record["data"]["feedback_merge"] = data.feedback.to_dict()
    info = ModelInfo(task=task, name=model_name or f"{task}-minilm-l6",
                     version=datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ"), labels=data.labels,
                     review_threshold=REVIEW_THRESHOLD_BOUNDS[0], max_length=args.max_length,
                     columns=recipe.columns, training=record, kind=recipe.kind.name)
    with building(out_dir) as build_dir:
        with tempfile.TemporaryDirectory(prefix="slm-train-") as tmp:
            trained = recipe.fine_tune(data, args, Path(tmp) / "checkpoint")
            export_fp32(trained.checkpoint_dir, build_dir, onnx_task=recipe.kind.onnx_task)
        info.training.update({"best_epoch": trained.best_epoch, "history": trained.history,
                              "train_seconds": round(trained.train_seconds, 1)})
        dev_fp32 = _choose_served_graph(recipe, build_dir, info, data, args)
        metrics = _score(recipe, build_dir, info, data, args, dev_fp32)
        info.metrics = metrics.to_dict()
        # The int8 kernels ONNX Runtime picked for these figures depend on both.
        info.training["measured_with"] = runtime_facts()
        write_card(build_dir / "card", title=f"{info.name} {info.version} ({info.precision})",
                   metrics=metrics.headline.to_dict(),
                   details={"model": info.model_id, "precision": info.precision, "labels": info.labels,
                            "review_threshold": info.review_threshold, **info.training})
        info.training["total_seconds"] = round(time.perf_counter() - started, 1)
        write_model_info(build_dir, info)
        if eval_file is not None:
            from pipelines.drift_reference import write_drift_reference

            from pipelines.reference_answers import write_reference_answers

            # The served model's answers on its test split, binned: what the services' drift gauge compares with.
            write_drift_reference(build_dir, recipe, eval_file, limit=args.max_test_examples, seed=args.seed)
            write_model_info(build_dir, info)  # the processor below loads only a folder its manifest covers
            # A sample of them as they are, with this machine's CPU: what another node checks itself against.
            write_reference_answers(build_dir, recipe, eval_file, seed=args.seed)
            write_model_info(build_dir, info)
    return TrainedFolder(info, metrics, data.feedback)


def _choose_served_graph(recipe: KindRecipe, out_dir: Path, info: ModelInfo, data: TrainingData,
                         args: TrainingArgs):
    """``model.onnx``: static int8 calibrated on training items, or the next rung that keeps the fp32
    model's answers on dev. Records the choice in ``info``; returns the fp32 graph's dev predictions."""
    fp32 = recipe.kind.load_model(out_dir, onnx_file=FP32_FILE, info=info)
    dev_fp32 = recipe.predict(fp32, data.dev, "dev fp32")
    calibration_items = subsample(data.train, recipe.calibration_items, args.seed)

    def agrees(graph: Path) -> float:
        candidate = recipe.kind.load_model(out_dir, onnx_file=str(graph), info=info)
        return recipe.agreement(dev_fp32, recipe.predict(candidate, data.dev, "dev int8"))

    served = choose_served_graph(out_dir, recipe.calibration_batches(fp32, calibration_items), agrees,
                                 args.int8_min_agreement, require_int8=args.require_int8)
    info.precision = served.precision
    info.training["quantization"] = {**served.to_dict(), recipe.calibration_record: len(calibration_items),
                                     "dynamic_preset": cpu_quantization_preset()}
    return dev_fp32


def _score(recipe: KindRecipe, out_dir: Path, info: ModelInfo, data: TrainingData, args: TrainingArgs,
           dev_fp32) -> ModelMetrics:
    """The review threshold picked on dev (into ``info``); the served and the fp32 graph scored on dev and test."""
    served = recipe.kind.load_model(out_dir, info=info)
    fp32 = recipe.kind.load_model(out_dir, onnx_file=FP32_FILE, info=info)
    dev_served = recipe.predict(served, data.dev, f"dev {info.precision}")
    info.review_threshold = pick_review_threshold(*recipe.review_evidence(data.dev, dev_served, data.labels))
    dev = SplitMetrics(served=recipe.dev_scores(data.dev, dev_served, data.labels),
                       fp32=recipe.dev_scores(data.dev, dev_fp32, data.labels),
                       agreement_with_fp32=recipe.agreement(dev_fp32, dev_served))
    if not data.test:
        return ModelMetrics(dev)
    test_served = recipe.predict(served, data.test, f"test {info.precision}")
    test = SplitMetrics(served=recipe.test_scores(data.test, test_served, served.labels),
                        fp32=recipe.test_scores(data.test, recipe.predict(fp32, data.test, "test fp32"), fp32.labels),
                        baseline=recipe.baseline(data, args))
    return ModelMetrics(dev, test)


def evaluate_model(recipe: KindRecipe, model_dir: Path, data_file: Path, *, card_dir: Path | None = None) -> Evaluation:
    """Scores of the served graph of ``model_dir`` on ``data_file``, with a card (under ``reports/`` by default)."""
    info = read_model_info(model_dir)
    evaluation = recipe.evaluate(Path(model_dir), info, Path(data_file))
    card_dir = card_dir or evaluation_card_dir(info, data_file)
    write_card(card_dir, title=f"{info.model_id} on {Path(data_file).name}", metrics=evaluation.to_dict(),
               details={"model": info.model_id, "data": evaluation.data})
    return replace(evaluation, card=card_dir / "card.md")
