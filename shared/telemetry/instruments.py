"""The counters and histogram every task service reports."""

from __future__ import annotations

from opentelemetry import metrics
from opentelemetry.metrics import Observation

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

    def observe_loop(self, loop) -> None:
        """Gauges of a consumer loop's Kafka health, read at each export: the seconds since the
        broker last answered it, and its lag. Kafka's health is reported here, not by readiness."""
        meter = metrics.get_meter(__name__)
        attributes = self.attributes

        def since_contact(_options):
            seconds = loop.seconds_since_contact()
            return [] if seconds is None else [Observation(seconds, attributes)]

        meter.create_observable_gauge("slm.kafka.broker.silence", callbacks=[since_contact], unit="s",
                                      description="Seconds since the broker last answered the consumer loop")
        meter.create_observable_gauge("slm.kafka.lag", callbacks=[lambda _options: [Observation(loop.lag, attributes)]],
                                      unit="{message}", description="Records behind the end of the assigned partitions")
