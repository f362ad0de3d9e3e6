"""Sequence classification as a kind of the recipe (:mod:`pipelines.recipe`): transactions, helpdesk, sentiment.

The kind's data reader is a CSV or JSONL file with a text, a label and optional extra fields,
which are folded into the text the encoder reads; its head is mean pooling and a linear layer
(:mod:`pipelines.common.classifier_training`); its metrics are accuracy, macro-F1, per-label
detail and top-3 accuracy; its decoder is the label of the highest probability.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from pipelines.common.args import TrainingArgs
from pipelines.common.baseline import BASELINE_NAME, tfidf_svm_baseline, tfidf_svm_predictions
from pipelines.common.classifier_training import train_classifier
from pipelines.common.data import ColumnChoice, ColumnMapping, Example, read_examples
from pipelines.common.metrics import agreement, classification_metrics, top_k_accuracy
from pipelines.common.model_output import file_sha256, recorded_path, resolve_recorded_path
from pipelines.common.scores import ClassificationScores, Evaluation, SeenTextScores
from pipelines.common.training import TrainedModel
from pipelines.recipe import TrainingData
from pipelines.tasks import TaskDataset
from shared.errors import ConfigError, DataError
from shared.model_text import model_text
from shared.runtime import ModelInfo, OnnxTextClassifier
from shared.task_kinds import CLASSIFICATION

__all__ = ["CALIBRATION_ITEMS", "ClassificationRecipe", "as_model_inputs", "calibration_batches", "rename_labels",
           "seen_and_unseen"]

logger = logging.getLogger(__name__)

# Training items whose activation ranges calibrate static int8, fed in runs of this size.
CALIBRATION_ITEMS = 512
CALIBRATION_BATCH = 16


def _label_of(example: Example) -> str:
    return example.label


def _model_input(example: Example) -> str:
    # What the encoder reads: the same text with other fields is another input, and a CSV's "20.00" and
    # a feedback file's "20" are the same one.
    return model_text(example.text, example.fields)


def rename_labels(examples: list[Example], label_names: dict[str, str]) -> list[Example]:
    if not label_names:
        return examples
    return [replace(ex, label=label_names.get(ex.label, ex.label)) for ex in examples]


def as_model_inputs(examples: Sequence[Example]) -> list[Example]:
    return [replace(ex, text=model_text(ex.text, ex.fields)) for ex in examples]


def _predict_probs(model: OnnxTextClassifier, examples: Sequence[Example], desc: str) -> np.ndarray:
    """Class probabilities for ``examples``, in chunks so the progress bar moves."""
    from tqdm.auto import tqdm

    texts = [ex.text for ex in examples]
    chunks = [model.predict_proba(texts[i : i + 256]) for i in tqdm(range(0, len(texts), 256), desc=desc,
                                                                     unit="chunk", leave=False)]
    return np.concatenate(chunks) if chunks else np.zeros((0, len(model.labels)), dtype=np.float32)


def calibration_batches(model: OnnxTextClassifier, examples: Sequence[Example]) -> list[dict[str, np.ndarray]]:
    """Input batches of ``examples`` (model inputs, fields folded in) as the service feeds them."""
    encodings = model.tokenizer.encode_batch([ex.text for ex in examples])
    return [model.feeds(encodings[i : i + CALIBRATION_BATCH]) for i in range(0, len(encodings), CALIBRATION_BATCH)]


def _scores_of_probs(gold: Sequence[str], probs: np.ndarray, model_labels: Sequence[str]) -> ClassificationScores:
    """Scores of predicted probabilities, top-3 accuracy included; labels only the test file has still
    count (as misses), so the score is not flattered."""
    predicted = [model_labels[i] for i in probs.argmax(axis=1)]
    metrics = classification_metrics(gold, predicted, list(model_labels) + sorted(set(gold) - set(model_labels)))
    top3 = top_k_accuracy(gold, probs, model_labels, k=3)
    return replace(ClassificationScores.from_dict(metrics), top3_accuracy=top3)


def seen_and_unseen(raw_test: Sequence[Example], raw_train: Sequence[Example], gold: Sequence[str],
                    probs: np.ndarray, model_labels: Sequence[str],
                    baseline: Sequence[str] | None = None) -> dict[str, SeenTextScores]:
    """Scores on the test rows whose text (without fields) occurs in the training file, and on the rest.

    For transactions this is merchants seen and unseen in training: a seen merchant is mostly a
    lookup of how it was coded before, an unseen one needs the model to generalise.
    """
    known = {ex.text.strip().lower() for ex in raw_train}
    seen = np.array([ex.text.strip().lower() in known for ex in raw_test])
    report = {}
    for name, mask in (("seen", seen), ("unseen", ~seen)):
        if not mask.any():
            continue
        rows = np.flatnonzero(mask)
        part = _scores_of_probs([gold[i] for i in rows], probs[rows], model_labels)
        report[name] = SeenTextScores(
            n=int(len(rows)), share=round(float(mask.mean()), 4), accuracy=part.accuracy, macro_f1=part.macro_f1,
            top3_accuracy=part.top3_accuracy,
            baseline_accuracy=None if baseline is None else float(np.mean([baseline[i] == gold[i] for i in rows])))
    return report


@dataclass(frozen=True)
class ClassificationRecipe:
    """Sequence classification's part of the recipe.

    Args:
        column_choice (`ColumnChoice`, defaults to none named): columns named on the command line.
        base_columns (`ColumnMapping`, defaults to the default mapping): the data set's columns, which
            the named ones replace.
        label_names (`dict[str, str]`, defaults to `{}`): raw label -> the name results carry.
        baseline_train (`Path | None`): ``slm evaluate``: fit TF-IDF + SVM on this training file too.
    """

    column_choice: ColumnChoice = field(default_factory=ColumnChoice)
    base_columns: ColumnMapping = field(default_factory=ColumnMapping)
    label_names: dict[str, str] = field(default_factory=dict)
    baseline_train: Path | None = None

    kind = CLASSIFICATION
    scores = ClassificationScores
    stratify = staticmethod(_label_of)
    same_input = staticmethod(_model_input)
    document = None
    calibration_items = CALIBRATION_ITEMS
    calibration_record = "calibration_items"
    unit = "rows"
    min_items_to_split = 0

    @classmethod
    def for_training(cls, columns: ColumnChoice, *, baseline: bool,
                     dataset: TaskDataset | None) -> ClassificationRecipe:
        """Training on ``dataset``'s files (its columns and label names, the named columns in place
        of its own), or with ``dataset=None`` on a customer's file. ``baseline`` is in the training args."""
        if dataset is None:
            return cls(columns)
        return cls(columns, dataset.columns, dict(dataset.label_names))

    @classmethod
    def for_evaluation(cls, info: ModelInfo, columns: ColumnChoice, *, baseline: bool,
                       baseline_train: Path | None) -> ClassificationRecipe:
        """``slm evaluate`` of ``info``'s model; ``baseline`` fits TF-IDF + SVM on ``baseline_train``, or
        on the model's own training file, which must then be here."""
        if baseline and baseline_train is None:
            baseline_train = _training_file(info)
            if not baseline_train.is_file():
                raise ConfigError(f"the model's training file {str(baseline_train)!r} is not here; "
                                  "give --baseline-data FILE")
        # Columns named on the command line replace the defaults; else the model's own are read.
        model = cls.for_model(info)
        base = ColumnMapping() if columns.given else model.base_columns
        return cls(columns, base, model.label_names, baseline_train)

    @classmethod
    def for_model(cls, info: ModelInfo) -> ClassificationRecipe:
        """The recipe that reads files as ``info``'s model was trained on them (its columns and label names)."""
        return cls(ColumnChoice(), ColumnMapping.from_dict(info.columns) if info.columns else ColumnMapping(),
                   info.training.get("label_names", {}))

    @staticmethod
    def request_rows(dataset: TaskDataset, limit: int | None) -> tuple[list[dict], list[str]]:
        examples = rename_labels(read_examples(dataset.test_file, dataset.columns), dataset.label_names)[:limit]
        return [{"text": ex.text, "fields": ex.fields} for ex in examples], [ex.label for ex in examples]

    @property
    def column_mapping(self) -> ColumnMapping:
        return self.column_choice.over(self.base_columns)

    @property
    def columns(self) -> dict:
        return self.column_mapping.to_dict()

    def read(self, path: Path, args: TrainingArgs | None = None) -> list[Example]:
        return rename_labels(read_examples(path, self.column_mapping), self.label_names)

    def prepare(self, train: list[Example], dev: list[Example], test: list[Example],
                files: Sequence[Path | None]) -> TrainingData:
        # Label order: the task's known names first (stable across retrains), then any others sorted.
        seen = {ex.label for ex in train}
        names = self.label_names.values()
        labels = [name for name in names if name in seen] + sorted(seen - set(names))
        if len(labels) < 2:
            raise DataError(f"{files[0]}: training data has {len(labels)} label(s) ({labels}); need at least 2")
        return TrainingData(labels=labels, train=as_model_inputs(train),
                            dev=[ex for ex in as_model_inputs(dev) if ex.label in seen], test=as_model_inputs(test),
                            as_read=(train, test), record={"label_names": self.label_names})

    def fine_tune(self, data: TrainingData, args: TrainingArgs, checkpoint_dir: Path) -> TrainedModel:
        return train_classifier(data.train, data.dev, data.labels, args, checkpoint_dir)

    def predict(self, model: OnnxTextClassifier, items: Sequence[Example], desc: str) -> np.ndarray:
        return _predict_probs(model, items, desc)

    def agreement(self, reference: np.ndarray, candidate: np.ndarray) -> float:
        return agreement(list(candidate.argmax(axis=1)), list(reference.argmax(axis=1)))

    def calibration_batches(self, model: OnnxTextClassifier, items: Sequence[Example]) -> list[dict[str, np.ndarray]]:
        return calibration_batches(model, items)

    def review_evidence(self, items: Sequence[Example], probs: np.ndarray,
                        labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        predicted = [labels[i] for i in probs.argmax(axis=1)]
        return probs.max(axis=1), np.array([ex.label for ex in items]) == np.array(predicted)

    def dev_scores(self, items: Sequence[Example], probs: np.ndarray, labels: Sequence[str]) -> ClassificationScores:
        predicted = [labels[i] for i in probs.argmax(axis=1)]
        return ClassificationScores.from_dict(classification_metrics([ex.label for ex in items], predicted, labels))

    def test_scores(self, items: Sequence[Example], probs: np.ndarray,
                    model_labels: Sequence[str]) -> ClassificationScores:
        return _scores_of_probs([ex.label for ex in items], probs, model_labels)

    def item_scores(self, model: OnnxTextClassifier, items: Sequence[Example]) -> np.ndarray:
        return model.predict_proba([ex.text for ex in items])

    def baseline(self, data: TrainingData, args: TrainingArgs) -> ClassificationScores | None:
        if not args.baseline:
            return None
        train, test = data.as_read
        logger.info("fitting the TF-IDF + LinearSVC baseline on %d rows (minutes with many labels)", len(train))
        return ClassificationScores.from_dict(tfidf_svm_baseline(train, test, data.labels))

    def evaluate(self, model_dir: Path, info: ModelInfo, data_file: Path) -> Evaluation:
        """Scores of the served graph on ``data_file``, by text seen and unseen in training, and the
        TF-IDF + SVM baseline when :attr:`baseline_train` is given."""
        raw = self.read(data_file)
        model = OnnxTextClassifier(model_dir, info=info)
        gold = [ex.label for ex in raw]
        probs = _predict_probs(model, as_model_inputs(raw), f"evaluate {data_file.name}")
        unknown = sorted(set(gold) - set(info.labels))
        baseline = baseline_scores = train = None
        if self.baseline_train is not None:
            train = self.read(self.baseline_train)
            started = time.perf_counter()
            baseline = tfidf_svm_predictions(train, raw)
            metrics = classification_metrics(gold, baseline, list(info.labels) + unknown)
            metrics.pop("confusion_matrix")
            baseline_scores = ClassificationScores.from_dict(
                {**metrics, "model": BASELINE_NAME, "seconds": round(time.perf_counter() - started, 1)})
        train_file = _training_file(info)
        if train is None and train_file.is_file():
            train = self.read(train_file)
        return Evaluation(
            model_id=info.model_id, data={"file": recorded_path(data_file), "sha256": file_sha256(data_file)},
            scores=_scores_of_probs(gold, probs, model.labels), baseline=baseline_scores,
            by_seen_text=seen_and_unseen(raw, train, gold, probs, model.labels, baseline) if train is not None else {},
            unknown=unknown)


def _training_file(info: ModelInfo) -> Path:
    """The file a model's record says it was trained on, on this machine."""
    return resolve_recorded_path(info.training.get("data", {}).get("train", {}).get("file", ""))
