"""The counters and histogram every task service reports."""

from __future__ import annotations

from opentelemetry import metrics

__all__ = ["TaskInstruments"]


class TaskInstruments:
    """Messages in, results, review, DLQ and batch latency, tagged with the task."""

    def __init__(self, task: str) -> None:
        meter = metrics.get_meter(__name__)
        self.attributes = {"task": task}
        self.messages_in = meter.create_counter("slm.messages.in", unit="{message}", description="Records polled")
        self.results = meter.create_counter("slm.results", unit="{message}", description="Results published")
        self.review = meter.create_counter("slm.review", unit="{message}", description="Results sent to review")
        self.dlq = meter.create_counter("slm.dlq", unit="{message}", description="Records sent to the DLQ")
        self.batch_latency = meter.create_histogram("slm.batch.latency", unit="ms", description="Batch processing time")

    def record_batch(self, *, polled: int, results: int, review: int, dlq: int, latency_ms: float, source: str) -> None:
        attrs = {**self.attributes, "source": source}
        self.messages_in.add(polled, attrs)
        self.results.add(results, attrs)
        self.review.add(review, attrs)
        self.dlq.add(dlq, attrs)
        self.batch_latency.record(latency_ms, attrs)
