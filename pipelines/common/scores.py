"""Typed scores: what a training or an evaluation measured, as objects the CLI prints from.

:mod:`pipelines.common.metrics` computes the numbers; these classes hold them. ``to_dict`` gives
exactly the JSON the model folder and the card store (``slm_model.json`` ``metrics``,
``card/metrics.json``) and ``slm evaluate --json`` prints, so the files keep their format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ClassificationScores", "EntityScores", "Evaluation", "LabelScores", "ModelMetrics", "Scores",
           "SeenTextScores", "SplitMetrics"]


@dataclass(frozen=True)
class LabelScores:
    """Precision, recall and F1 of one label (or entity type), and its gold count."""

    precision: float
    recall: float
    f1: float
    support: int

    def to_dict(self) -> dict:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1, "support": self.support}


def _per_class(rows: dict) -> dict[str, LabelScores]:
    return {name: LabelScores(**row) for name, row in rows.items()}


@dataclass(frozen=True)
class ClassificationScores:
    """Accuracy, macro-F1 and per-label detail of one graph on one split.

    ``extra`` holds what a baseline's record adds (its ``model`` and ``seconds``), kept in order.
    """

    accuracy: float
    macro_f1: float
    weighted_f1: float
    n: int
    per_label: dict[str, LabelScores]
    confusion_matrix: dict | None = None
    top3_accuracy: float | None = None
    extra: dict = field(default_factory=dict)

    unit = "items"
    per_class_heading = "label"
    unknown_key = "labels_unknown_to_model"

    @classmethod
    def from_dict(cls, data: dict) -> ClassificationScores:
        known = ("accuracy", "macro_f1", "weighted_f1", "n", "per_label", "confusion_matrix", "top3_accuracy")
        return cls(data["accuracy"], data["macro_f1"], data["weighted_f1"], data["n"], _per_class(data["per_label"]),
                   data.get("confusion_matrix"), data.get("top3_accuracy"),
                   {k: v for k, v in data.items() if k not in known})

    def to_dict(self) -> dict:
        data = {"accuracy": self.accuracy, "macro_f1": self.macro_f1, "weighted_f1": self.weighted_f1, "n": self.n,
                "per_label": {name: row.to_dict() for name, row in self.per_label.items()}}
        if self.confusion_matrix is not None:
            data["confusion_matrix"] = self.confusion_matrix
        if self.top3_accuracy is not None:
            data["top3_accuracy"] = self.top3_accuracy
        return {**data, **self.extra}

    @property
    def per_class(self) -> dict[str, LabelScores]:
        return self.per_label

    def summary(self) -> str:
        """``accuracy=0.8123 macro_f1=0.7012``: a training's line."""
        return f"accuracy={self.accuracy:.4f} macro_f1={self.macro_f1:.4f}"

    brief = summary

    def evaluation_line(self) -> str:
        """``slm evaluate``'s headline."""
        top3 = f"  top-3 accuracy {self.top3_accuracy:.4f}" if self.top3_accuracy is not None else ""
        return f"accuracy {self.accuracy:.4f}  macro-F1 {self.macro_f1:.4f}{top3}"

    def listing(self) -> str:
        """``slm models list``'s column."""
        return f"accuracy {self.accuracy:.4f}, macro-F1 {self.macro_f1:.4f}"


@dataclass(frozen=True)
class EntityScores:
    """Entity-level micro precision, recall and F1 over exact spans, with per-type detail."""

    f1: float
    precision: float
    recall: float
    n: int
    entities: dict[str, int]
    per_type: dict[str, LabelScores]

    unit = "sentences"
    per_class_heading = "type"
    unknown_key = "types_unknown_to_model"
    top3_accuracy = None  # a ranking of labels means nothing for spans

    @classmethod
    def from_dict(cls, data: dict) -> EntityScores:
        return cls(data["f1"], data["precision"], data["recall"], data["n"], data["entities"],
                   _per_class(data["per_type"]))

    def to_dict(self) -> dict:
        return {"f1": self.f1, "precision": self.precision, "recall": self.recall, "n": self.n,
                "entities": self.entities, "per_type": {name: row.to_dict() for name, row in self.per_type.items()}}

    @property
    def per_class(self) -> dict[str, LabelScores]:
        return self.per_type

    def summary(self) -> str:
        return f"entity F1={self.f1:.4f} (P={self.precision:.4f} R={self.recall:.4f})"

    def brief(self) -> str:
        return f"F1={self.f1:.4f}"

    def evaluation_line(self) -> str:
        return f"entity F1 {self.f1:.4f}  precision {self.precision:.4f}  recall {self.recall:.4f}"

    def listing(self) -> str:
        return f"F1 {self.f1:.4f}"


Scores = ClassificationScores | EntityScores


@dataclass(frozen=True)
class SplitMetrics:
    """The served graph against the fp32 graph on one split (and, on test, the optional baseline)."""

    served: Scores
    fp32: Scores
    agreement_with_fp32: float | None = None
    baseline: ClassificationScores | None = None

    def to_dict(self) -> dict:
        data = {"served": self.served.to_dict(), "fp32": self.fp32.to_dict()}
        if self.agreement_with_fp32 is not None:
            data["agreement_with_fp32"] = self.agreement_with_fp32
        if self.baseline is not None:
            data["baseline"] = self.baseline.to_dict()
        return data


@dataclass(frozen=True)
class ModelMetrics:
    """What a training measured: dev (which chose the threshold) and, with a test file, test."""

    dev: SplitMetrics
    test: SplitMetrics | None = None

    def to_dict(self) -> dict:
        """``slm_model.json``'s ``metrics``."""
        return {"dev": self.dev.to_dict(), **({"test": self.test.to_dict()} if self.test else {})}

    def splits(self) -> list[tuple[str, SplitMetrics]]:
        return [("dev", self.dev), *([("test", self.test)] if self.test else [])]

    @property
    def headline(self) -> Scores:
        """The served graph's scores on test, or on dev without a test file: what the card leads with."""
        return (self.test or self.dev).served


@dataclass(frozen=True)
class SeenTextScores:
    """Scores on the test rows whose text occurs (``seen``) or not (``unseen``) in the training file."""

    n: int
    share: float
    accuracy: float
    macro_f1: float
    top3_accuracy: float
    baseline_accuracy: float | None = None

    def to_dict(self) -> dict:
        data = {"n": self.n, "share": self.share, "accuracy": self.accuracy, "macro_f1": self.macro_f1,
                "top3_accuracy": self.top3_accuracy}
        return data if self.baseline_accuracy is None else {**data, "baseline_accuracy": self.baseline_accuracy}


@dataclass(frozen=True)
class Evaluation:
    """``slm evaluate``: a model folder's scores on one labelled file, and where its card went.

    Args:
        model_id (`str`): the model scored.
        data (`dict`): the file as the card records it (``file``, ``sha256``).
        scores (`Scores`): the served graph's scores.
        seconds (`float | None`): time the entity tagger took (entities only).
        baseline (`ClassificationScores | None`): TF-IDF + SVM on the same rows, when asked for.
        by_seen_text (`dict[str, SeenTextScores]`): scores on rows whose text the training file holds, and the rest.
        unknown (`list[str]`): labels (or entity types) of the file the model does not know.
        card (`Path | None`): the card's ``card.md``, once written.
    """

    model_id: str
    data: dict
    scores: Scores
    seconds: float | None = None
    baseline: ClassificationScores | None = None
    by_seen_text: dict[str, SeenTextScores] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)
    card: Path | None = None

    def to_dict(self) -> dict:
        """The JSON of ``slm evaluate --json`` (and, without ``card``, of the card's ``metrics.json``)."""
        data = self.scores.to_dict()
        if self.seconds is not None:
            data["seconds"] = self.seconds
        if self.baseline is not None:
            data["baseline"] = self.baseline.to_dict()
        if self.by_seen_text:
            data["by_seen_text"] = {name: part.to_dict() for name, part in self.by_seen_text.items()}
        data.update(model=self.model_id, data=self.data)
        if self.unknown:
            data[self.scores.unknown_key] = self.unknown
        if self.card is not None:
            data["card"] = str(self.card)
        return data
