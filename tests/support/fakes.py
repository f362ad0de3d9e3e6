"""Fakes for unit tests: a keyword 'model' behind the TaskProcessor interface, a polled record, and podman."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from shared.schemas import ClassificationResultV1, LabelScore


class FakeProcessor:
    """Labels by keyword; scores under 0.5 need review; 'boom' makes the model fail."""

    task = "sentiment"
    model_id = "fake:1"

    def process(self, items):
        if any("boom" in i.request.text for i in items):
            raise RuntimeError("model exploded")
        results = []
        for item in items:
            score = 0.4 if "unsure" in item.request.text else 0.9
            results.append(ClassificationResultV1(
                id=item.id, task=self.task, model=self.model_id, label="bullish", score=score,
                scores={"bullish": score}, top=[LabelScore(label="bullish", score=score)], review=score < 0.5,
                received_at=item.at, latency_ms=0.1))
        return results


@dataclass
class Record:
    """A polled Kafka record, as kafka-python's ConsumerRecord has it for the batch planner."""

    value: bytes | None
    offset: int
    key: bytes | None = b"k"
    headers: list = field(default_factory=list)
    topic: str = "sentiment.requests"
    partition: int = 0


class FakePodman:
    """Records podman commands; `save` writes the archive it is asked for."""

    def __init__(self, existing=(), images=()):
        self.existing = set(existing)
        self.listed = list(images)
        self.calls: list[tuple[str, ...]] = []

    def run(self, *args, what, log, timeout=600):
        self.calls.append(args)
        if args[0] == "save":
            Path(args[args.index("--output") + 1]).write_bytes(b"archive")
        return ""

    def image_exists(self, name):
        return name in self.existing

    def inspect(self, name):
        return {"Id": "sha256:1", "Size": 128_000_000}

    def images(self):
        return self.listed
