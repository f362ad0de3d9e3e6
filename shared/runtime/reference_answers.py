"""Reference answers: a fixed sample of requests and the answers the model gave where its card was measured.

A model folder may hold ``reference_answers.json``: a few dozen rows of its test file as requests,
the service's answers to them, and the ONNX Runtime version and CPU features they were computed
with. Answering the same requests again on another machine, and comparing, tells a node whether it
answers as the card says (``slm models verify --scores``; each service checks it as it loads:
:mod:`shared.reference_check`). An
int8 graph whose answers depend on the CPU's instructions shows up here as scores that moved.

Training writes the file from its test split; ``slm models reference`` writes it for a folder
trained before (:mod:`pipelines.reference_refresh`).
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["REFERENCE_ANSWERS_FILE", "SCORE_TOLERANCE", "AnswerCheck", "answer_of", "compare_answers",
           "read_reference_answers", "runtime_facts"]

REFERENCE_ANSWERS_FILE = "reference_answers.json"
# Float kernels of different vector widths round differently (1e-6); the int8 saturation this
# check exists to catch moves scores by tenths.
SCORE_TOLERANCE = 0.01
# The CPU features that pick ONNX Runtime's int8 kernels.
INT8_CPU_FEATURES = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8")


def runtime_facts() -> dict:
    """ONNX Runtime's version and the CPU's model and int8-relevant features, as a card records them."""
    import onnxruntime

    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    return {"onnxruntime": onnxruntime.__version__, "cpu": model,
            "int8_features": [feature for feature in INT8_CPU_FEATURES if feature in flags]}


def answer_of(result, top: int | None = None, digits: int | None = None) -> dict:
    """The part of a service's result that the model decides: the label and the labels' scores (the
    ``top`` highest, or all), or the entity spans with their scores; no ids, timings or review flag.
    Scores are rounded to ``digits`` when given."""
    rounded = (lambda score: round(score, digits)) if digits is not None else float
    if hasattr(result, "entities"):
        return {"entities": [{"type": e.type, "start": e.start, "end": e.end, "score": rounded(e.score)}
                             for e in result.entities]}
    ranked = sorted(result.scores.items(), key=lambda item: item[1], reverse=True)[:top]
    return {"label": result.label, "scores": {label: rounded(score) for label, score in ranked}}


def compare_answers(expected: dict, got: dict) -> tuple[bool, float]:
    """(same decision, largest score difference) of two :func:`answer_of` answers, over the labels
    ``expected`` lists.

    A classification decides the same when its label does; entities when the same typed spans are found.
    """
    if "entities" in expected:
        spans = lambda answer: {(e["type"], e["start"], e["end"]): e["score"] for e in answer["entities"]}  # noqa: E731
        want, have = spans(expected), spans(got)
        differences = [abs(want[span] - have[span]) for span in want.keys() & have.keys()]
        return want.keys() == have.keys(), max(differences, default=0.0)
    differences = [abs(score - got["scores"].get(label, 0.0)) for label, score in expected["scores"].items()]
    return expected["label"] == got["label"], max(differences, default=0.0)


@dataclass
class AnswerCheck:
    """The folder's reference requests answered again, against the stored answers."""

    items: int
    decisions_changed: list[int] = field(default_factory=list)
    largest_score_difference: float = 0.0
    measured_with: dict = field(default_factory=dict)
    tolerance: float = SCORE_TOLERANCE

    @property
    def ok(self) -> bool:
        return not self.decisions_changed and self.largest_score_difference <= self.tolerance

    def summary(self) -> str:
        where = self.measured_with
        against = (f"stored on {where.get('cpu', '?')} ({', '.join(where.get('int8_features', [])) or 'no int8 features'}), "
                   f"ONNX Runtime {where.get('onnxruntime', '?')}")
        verdict = "as stored" if self.ok else "NOT as stored"
        return (f"answers {verdict}: {self.items - len(self.decisions_changed)}/{self.items} decisions the same, "
                f"largest score difference {self.largest_score_difference:.4f} (tolerance {self.tolerance}); "
                f"{against}")


def read_reference_answers(model_dir: Path) -> dict | None:
    """The folder's reference answers, or ``None`` when it has none."""
    path = Path(model_dir) / REFERENCE_ANSWERS_FILE
    return json.loads(path.read_text()) if path.is_file() else None
