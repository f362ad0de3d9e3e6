"""Fakes for unit tests: a keyword 'model' behind the TaskProcessor interface."""

from __future__ import annotations

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
