"""Drift: how far a task's recent answers have moved from the model's answers on held-out data.

Training (and ``slm drift reference`` for a folder trained before this existed) stores the
model's answers on its test split in the model folder as ``drift_reference.json``
(:data:`REFERENCE_FILE`, listed in the manifest like every other file): the frequency of each
label (for entities: of each entity type, and of answers that found none), and counts over
bins of the top score and of the text length in characters, the bins cut at the reference's
deciles. A serving process keeps the same counts over a sliding window of its last answers
(:class:`DriftMonitor`, a :class:`shared.observed.ResultObserver`) and exports the population
stability index of each feature as the observable gauge ``slm.drift.psi`` (attributes
``task``, ``model``, ``feature`` in ``label``, ``score``, ``length`` and ``max``, the largest
of the three). ``slm drift`` computes the label and score ones from the results topic.

PSI is ``sum((a - e) * ln(a / e))`` over the bins, ``e`` and ``a`` the reference's and the
window's shares, each at least :data:`EPSILON` so that an empty bin counts as nearly empty.
Under 0.1 is usually read as no shift, 0.1 to 0.25 as a moderate one, above 0.25 as a large one.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import weakref
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shared.errors import ModelError

__all__ = ["AnswerFeatures", "CategoricalBins", "DriftMonitor", "DriftReference", "DriftWindow", "EPSILON",
           "FEATURES", "FeatureReference", "MIN_ITEMS", "NONE_LABEL", "NumericBins", "OTHER_LABEL", "REFERENCE_FILE",
           "answer_features", "build_reference", "drift_monitors", "psi", "register_drift_gauge"]

logger = logging.getLogger(__name__)

REFERENCE_FILE = "drift_reference.json"
FEATURES = ("label", "score", "length")
#: Smallest share a bin counts with, so that an empty bin gives a finite PSI.
EPSILON = 1e-4
#: Numeric features are cut at the reference's deciles (fewer bins where deciles coincide).
QUANTILES = tuple(round(q / 10, 1) for q in range(1, 10))
#: A window holding fewer answers than this (or than the window size, if smaller) reports no PSI.
MIN_ITEMS = 100
#: The label bin of an entities answer that found no entity, and of labels the reference never saw.
NONE_LABEL = "(none)"
OTHER_LABEL = "(other)"
FORMAT_VERSION = 1


def psi(expected: Sequence[float], actual: Sequence[float], epsilon: float = EPSILON) -> float:
    """Population stability index of ``actual`` against ``expected`` (counts or shares over the same bins).

    Each share is at least ``epsilon`` (an empty bin counts as nearly empty; the shares are not
    renormalised after). Identical distributions give 0.

    Raises:
        ValueError: the bins differ in number, or either side counts nothing.
    """
    e = np.asarray(expected, dtype=float)
    a = np.asarray(actual, dtype=float)
    if e.shape != a.shape:
        raise ValueError(f"expected and actual have different bins: {e.shape[0]} and {a.shape[0]}")
    if e.sum() <= 0 or a.sum() <= 0:
        raise ValueError(f"PSI needs counts on both sides (expected {e.sum()}, actual {a.sum()})")
    e = np.maximum(e / e.sum(), epsilon)
    a = np.maximum(a / a.sum(), epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass(frozen=True)
class CategoricalBins:
    """One bin per reference category, and a last one for any other (:data:`OTHER_LABEL`)."""

    categories: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.categories) + 1

    @property
    def names(self) -> list[str]:
        return [*self.categories, OTHER_LABEL]

    def index(self, value: str) -> int:
        try:
            return self.categories.index(value)
        except ValueError:
            return len(self.categories)

    def to_dict(self) -> dict:
        return {"type": "categorical", "categories": list(self.categories)}


@dataclass(frozen=True)
class NumericBins:
    """Bins cut at ``edges`` (ascending): bin ``i`` holds ``edges[i-1] < x <= edges[i]``, the first
    and last open-ended."""

    edges: tuple[float, ...]

    @classmethod
    def at_quantiles(cls, values: Sequence[float], quantiles: Sequence[float] = QUANTILES) -> NumericBins:
        if not len(values):
            return cls(())
        return cls(tuple(float(e) for e in np.unique(np.quantile(np.asarray(values, dtype=float), quantiles))))

    @property
    def size(self) -> int:
        return len(self.edges) + 1

    @property
    def names(self) -> list[str]:
        bounds = ["-inf", *(f"{e:.4g}" for e in self.edges), "inf"]
        return [f"({low}, {high}]" for low, high in zip(bounds, bounds[1:])]

    def index(self, value: float) -> int:
        return bisect_left(self.edges, value)

    def to_dict(self) -> dict:
        return {"type": "numeric", "edges": list(self.edges)}


Bins = CategoricalBins | NumericBins


def _bins_from_dict(data: Mapping) -> Bins:
    if data.get("type") == "categorical":
        return CategoricalBins(tuple(str(c) for c in data["categories"]))
    if data.get("type") == "numeric":
        return NumericBins(tuple(float(e) for e in data["edges"]))
    raise ValueError(f"unknown bin type {data.get('type')!r}")


@dataclass(frozen=True)
class FeatureReference:
    """A feature's bins and the reference's count in each."""

    bins: Bins
    counts: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.counts) != self.bins.size:
            raise ValueError(f"{len(self.counts)} counts for {self.bins.size} bins")

    def count(self, values: Iterable) -> list[int]:
        counts = [0] * self.bins.size
        for value in values:
            counts[self.bins.index(value)] += 1
        return counts

    def psi(self, counts: Sequence[int]) -> float:
        return psi(self.counts, counts)

    def to_dict(self) -> dict:
        return {**self.bins.to_dict(), "counts": list(self.counts)}

    @classmethod
    def from_dict(cls, data: Mapping) -> FeatureReference:
        return cls(_bins_from_dict(data), tuple(int(c) for c in data["counts"]))


@dataclass(frozen=True)
class AnswerFeatures:
    """What drift is measured on, from one answer: its labels (one for classification; each entity's
    type, or :data:`NONE_LABEL`, for entities), its scores (the top score; each entity's) and the
    length of the request's text in characters (``None`` where the text is not known: the results topic)."""

    labels: tuple[str, ...]
    scores: tuple[float, ...]
    length: int | None


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def answer_features(result: Any, text: str | None = None) -> AnswerFeatures | None:
    """The drift features of one result (a result model or its JSON as a dict); ``None`` for a value
    that is neither a classification nor an entities result."""
    length = None if text is None else len(text)
    entities = _field(result, "entities")
    if entities is not None:
        labels = tuple(str(_field(e, "type")) for e in entities) or (NONE_LABEL,)
        return AnswerFeatures(labels, tuple(float(_field(e, "score")) for e in entities), length)
    label, score = _field(result, "label"), _field(result, "score")
    if label is None or score is None:
        return None
    return AnswerFeatures((str(label),), (float(score),), length)


@dataclass(frozen=True)
class DriftReference:
    """A model's answers on held-out data, binned (what ``drift_reference.json`` holds).

    Args:
        task (`str`): the task.
        model (`str`): the model id whose answers these are.
        items (`int`): answers counted.
        features (`dict[str, FeatureReference]`): ``label``, ``score`` and ``length``.
        source (`dict`, defaults to `{}`): where the answers came from (file, its SHA-256, split).
    """

    task: str
    model: str
    items: int
    features: dict[str, FeatureReference]
    source: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"format": FORMAT_VERSION, "task": self.task, "model": self.model, "items": self.items,
                "source": self.source, "features": {name: f.to_dict() for name, f in self.features.items()}}

    @classmethod
    def from_dict(cls, data: Mapping) -> DriftReference:
        return cls(task=data["task"], model=data["model"], items=int(data["items"]),
                   source=dict(data.get("source", {})),
                   features={name: FeatureReference.from_dict(f) for name, f in data["features"].items()})

    def write(self, model_dir: Path) -> Path:
        path = Path(model_dir) / REFERENCE_FILE
        path.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
        return path

    @classmethod
    def read(cls, model_dir: Path) -> DriftReference | None:
        """The reference stored in ``model_dir``; ``None`` when it has none.

        Raises:
            ModelError: the file is there but unreadable.
        """
        path = Path(model_dir) / REFERENCE_FILE
        if not path.is_file():
            return None
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"{path} is not a valid drift reference: {exc!r}") from None

    def counts_of(self, answers: Iterable[AnswerFeatures]) -> dict[str, list[int]]:
        """Counts of ``answers`` over this reference's bins (``length`` only from answers that know it)."""
        counts = {name: [0] * ref.bins.size for name, ref in self.features.items()}
        for answer in answers:
            for name, indices in self.bin_indices(answer).items():
                for i in indices:
                    counts[name][i] += 1
        return counts

    def bin_indices(self, answer: AnswerFeatures) -> dict[str, tuple[int, ...]]:
        """The bin of each of ``answer``'s values, by feature."""
        out = {}
        if "label" in self.features:
            out["label"] = tuple(self.features["label"].bins.index(v) for v in answer.labels)
        if "score" in self.features:
            out["score"] = tuple(self.features["score"].bins.index(v) for v in answer.scores)
        if "length" in self.features:
            out["length"] = () if answer.length is None else (self.features["length"].bins.index(answer.length),)
        return out

    def psi_of(self, counts: Mapping[str, Sequence[int]]) -> dict[str, float]:
        """PSI of each feature with counts in ``counts``, and ``max``, the largest (empty when none has)."""
        values = {name: self.features[name].psi(c) for name, c in counts.items() if name in self.features and sum(c)}
        return {**values, "max": max(values.values())} if values else {}


def build_reference(task: str, model: str, answers: Sequence[AnswerFeatures],
                    source: dict | None = None) -> DriftReference:
    """The reference of a model from its ``answers`` on held-out data: label frequencies, and counts over
    the deciles of the scores and of the text lengths.

    Raises:
        ValueError: no answers.
    """
    if not answers:
        raise ValueError(f"no answers to build the drift reference of {model} from")
    labels = sorted({label for a in answers for label in a.labels})
    scores = [s for a in answers for s in a.scores]
    lengths = [a.length for a in answers if a.length is not None]
    features = {"label": FeatureReference(CategoricalBins(tuple(labels)), (0,) * (len(labels) + 1))}
    if scores:
        bins = NumericBins.at_quantiles(scores)
        features["score"] = FeatureReference(bins, (0,) * bins.size)
    if lengths:
        bins = NumericBins.at_quantiles(lengths)
        features["length"] = FeatureReference(bins, (0,) * bins.size)
    empty = DriftReference(task, model, len(answers), features, dict(source or {}))
    counts = empty.counts_of(answers)
    return DriftReference(task, model, len(answers), {name: FeatureReference(ref.bins, tuple(counts[name]))
                                                      for name, ref in features.items()}, dict(source or {}))


class DriftWindow:
    """The bin counts of the last ``size`` answers, kept up to date as answers come and go (thread-safe).

    Args:
        reference (`DriftReference`): the bins, and the counts the window is compared with.
        size (`int`): answers kept.
        min_items (`int`, defaults to :data:`MIN_ITEMS`): fewer answers than ``min(min_items, size)``
            give no PSI (a handful of answers says little).
    """

    def __init__(self, reference: DriftReference, size: int, min_items: int = MIN_ITEMS) -> None:
        if size < 1:
            raise ValueError(f"drift window size must be at least 1, got {size}")
        self.reference = reference
        self.size = size
        self.min_items = min(min_items, size)
        self._answers: deque[dict[str, tuple[int, ...]]] = deque()
        self._counts = {name: [0] * ref.bins.size for name, ref in reference.features.items()}
        self._lock = threading.Lock()

    def add(self, answers: Iterable[AnswerFeatures]) -> None:
        binned = [self.reference.bin_indices(a) for a in answers]
        with self._lock:
            for indices in binned:
                self._apply(indices, +1)
                self._answers.append(indices)
                if len(self._answers) > self.size:
                    self._apply(self._answers.popleft(), -1)

    def _apply(self, indices: Mapping[str, tuple[int, ...]], step: int) -> None:
        for name, bins in indices.items():
            counts = self._counts[name]
            for i in bins:
                counts[i] += step

    def __len__(self) -> int:
        with self._lock:
            return len(self._answers)

    def counts(self) -> dict[str, list[int]]:
        with self._lock:
            return {name: list(c) for name, c in self._counts.items()}

    def psi(self) -> dict[str, float]:
        """PSI by feature and ``max``; empty while the window holds fewer than ``min_items`` answers."""
        with self._lock:
            if len(self._answers) < self.min_items:
                return {}
            counts = {name: list(c) for name, c in self._counts.items()}
        return self.reference.psi_of(counts)


# --- The service's monitor and its gauge ------------------------------------------------------

_monitors: weakref.WeakSet = weakref.WeakSet()
_gauge_meters: list = []
_gauge_lock = threading.Lock()
_GLOBAL_METER = object()


class DriftMonitor:
    """A result observer (:class:`shared.observed.ResultObserver`) that keeps a task's last answers
    in a :class:`DriftWindow` and reports their PSI through ``slm.drift.psi``.

    Args:
        task (`str`): the task, an attribute of every value.
        model_id (`str`): the served model's id, another.
        reference (`DriftReference`): the served model's reference.
        window (`int`): answers in the sliding window (``SLM_DRIFT_WINDOW``).
        meter: where the gauges are registered (default: the global meter provider's).
        role (`str`, defaults to `"primary"`): ``shadow`` for a shadow's monitor, a third attribute.
    """

    def __init__(self, task: str, model_id: str, reference: DriftReference, window: int, meter=None,
                 role: str = "primary") -> None:
        self.task = task
        self.model_id = model_id
        self.role = role
        self.window = DriftWindow(reference, window)
        if reference.model != model_id:
            logger.warning('drift reference is of another model task=%s model=%s reference_model=%s',
                           task, model_id, reference.model)
        _monitors.add(self)
        register_drift_gauge(meter)

    def observe(self, items: Sequence, results: Sequence) -> None:
        answers = []
        for item, result in zip(items, results):
            features = answer_features(result, item.request.text)
            if features is not None:
                answers.append(features)
        self.window.add(answers)

    def psi(self) -> dict[str, float]:
        return self.window.psi()

    @property
    def attributes(self) -> dict[str, str]:
        return {"task": self.task, "model": self.model_id, "role": self.role}


def drift_monitors(task: str, model_id: str, model_dir: Path, window: int, role: str = "primary") -> list[DriftMonitor]:
    """``[DriftMonitor]`` for a served model folder, or ``[]`` (logged at INFO) when it has no drift reference."""
    reference = DriftReference.read(model_dir)
    if reference is None:
        logger.info('no drift reference, no drift gauge task=%s model=%s file="%s"', task, model_id,
                    Path(model_dir) / REFERENCE_FILE)
        return []
    return [DriftMonitor(task, model_id, reference, window, role=role)]


def _psi_observations(_options=None) -> list:
    from opentelemetry.metrics import Observation

    observations = []
    for monitor in list(_monitors):
        for feature, value in monitor.psi().items():
            if math.isfinite(value):
                observations.append(Observation(value, {**monitor.attributes, "feature": feature}))
    return observations


def _window_observations(_options=None) -> list:
    from opentelemetry.metrics import Observation

    return [Observation(len(monitor.window), monitor.attributes) for monitor in list(_monitors)]


def register_drift_gauge(meter=None) -> None:
    """Register ``slm.drift.psi`` and ``slm.drift.window`` on ``meter`` (default: the global provider's),
    once per meter: one callback reports every live monitor (a second registration of a name would be
    dropped by the SDK with its callback)."""
    from opentelemetry import metrics

    with _gauge_lock:
        key = meter if meter is not None else _GLOBAL_METER
        if any(m is key for m in _gauge_meters):
            return
        _gauge_meters.append(key)
        meter = meter or metrics.get_meter(__name__)
        meter.create_observable_gauge("slm.drift.psi", callbacks=[_psi_observations], unit="1", description=(
            "Population stability index of the last SLM_DRIFT_WINDOW answers against the model's held-out "
            "answers, by feature (label, score, length; max: the largest)"))
        meter.create_observable_gauge("slm.drift.window", callbacks=[_window_observations], unit="{result}",
                                      description="Answers in the drift window")
