"""The one set of instruments every task service reports, whichever exporter reads them.

The same OpenTelemetry instruments feed OTLP (when configured) and the Prometheus text on
``/metrics`` (:mod:`shared.telemetry.prometheus`). Every series carries ``task``, ``model`` and
``role`` (``primary``, or ``shadow`` for a version that only publishes for comparison, so that
dashboards and alerts can leave it out); ``path`` says whether a request came over ``rest`` or
``kafka``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence

from opentelemetry import metrics
from opentelemetry.metrics import Observation

__all__ = ["PredictionMetrics", "TaskInstruments", "role_of"]

_METER = "slm.services"
# Scores are probabilities: tenths, with the top decile split where review thresholds sit.
SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99, 1.0)
# Milliseconds, from a cached answer to a request that waited out a broker outage.
LATENCY_BUCKETS_MS = (1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)


def role_of(shadow: bool) -> str:
    return "shadow" if shadow else "primary"


class PredictionMetrics:
    """Score histogram and predicted-label counts of every answer (a result observer).

    Classification: the top label and its score. Entities: each span's type and score.
    """

    def __init__(self, attributes: dict[str, str], meter: metrics.Meter | None = None) -> None:
        meter = meter or metrics.get_meter(_METER)
        self.attributes = attributes
        self.scores = meter.create_histogram("slm.score", unit="1", description="Score of each prediction",
                                             explicit_bucket_boundaries_advisory=SCORE_BUCKETS)
        self.labels = meter.create_counter("slm.predictions", unit="{prediction}",
                                           description="Predictions by label (entities: by span type)")

    def observe(self, items, results: Sequence) -> None:
        for result in results:
            entities = getattr(result, "entities", None)
            predictions = ([(e.type, e.score) for e in entities] if entities is not None
                           else [(result.label, result.score)])
            for label, score in predictions:
                self.scores.record(score, self.attributes)
                self.labels.add(1, {**self.attributes, "label": label})


class TaskInstruments:
    """Requests in, results, review, DLQ, latencies and Kafka health of one task's model.

    Instruments are created once per name by the SDK, so the REST path and the consumer loop
    of a process, each holding one of these, add to the same series. ``meter`` defaults to the
    global provider's.
    """

    def __init__(self, task: str, model: str = "unknown", meter: metrics.Meter | None = None,
                 role: str = "primary") -> None:
        meter = self.meter = meter or metrics.get_meter(_METER)
        self.attributes = {"task": task, "model": model, "role": role}
        self.requests = meter.create_counter("slm.requests", unit="{request}", description="Requests received")
        self.results = meter.create_counter("slm.results", unit="{message}", description="Results answered")
        self.review = meter.create_counter("slm.review", unit="{message}", description="Results sent to review")
        self.dlq = meter.create_counter("slm.dlq", unit="{message}", description="Records sent to the DLQ")
        self.batch_latency = meter.create_histogram("slm.batch.latency", unit="ms", description="Batch processing time",
                                                    explicit_bucket_boundaries_advisory=LATENCY_BUCKETS_MS)
        self.end_to_end_latency = meter.create_histogram(
            "slm.request.latency", unit="ms", explicit_bucket_boundaries_advisory=LATENCY_BUCKETS_MS,
            description="From a request's arrival (REST) or its record's timestamp (Kafka) to its answer")
        self.predictions = PredictionMetrics(self.attributes, meter)

    def record_batch(self, *, polled: int, results: int, review: int, dlq_types: dict[str, int],
                     latency_ms: float, path: str) -> None:
        attrs = {**self.attributes, "path": path}
        self.requests.add(polled, attrs)
        self.results.add(results, attrs)
        self.review.add(review, attrs)
        for error_type, count in dlq_types.items():
            self.dlq.add(count, {**self.attributes, "error_type": error_type})
        self.batch_latency.record(latency_ms, attrs)

    def record_latencies(self, latencies_ms: Sequence[float], path: str) -> None:
        attrs = {**self.attributes, "path": path}
        for latency in latencies_ms:
            self.end_to_end_latency.record(latency, attrs)

    def observe_loop(self, loop) -> None:
        """Report a consumer loop's Kafka health at each collection: the seconds the broker has been
        silent to it, and its lag per assigned partition. Kafka's health is reported here, not by
        readiness. A loop is reported while it lives and runs."""
        _loop_attributes[loop] = self.attributes
        _register_loop_gauges(self.meter)


# One callback per meter reports every live loop: the SDK keeps the first registration of a
# name and drops a second one's callback, so a gauge per loop would report the first loop only.
_loop_attributes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_gauge_meters: list = []
_gauge_lock = threading.Lock()


def _running_loops() -> list:
    return [(loop, attributes) for loop, attributes in list(_loop_attributes.items())
            if getattr(loop, "running", True)]


def _silence(_options) -> list[Observation]:
    observations = []
    for loop, attributes in _running_loops():
        seconds = loop.seconds_silent()
        if seconds is not None:
            observations.append(Observation(seconds, attributes))
    return observations


def _lag(_options) -> list[Observation]:
    return [Observation(behind, {**attributes, "topic": topic, "partition": str(partition)})
            for loop, attributes in _running_loops()
            for (topic, partition), behind in sorted(loop.partition_lag.items())]


def _register_loop_gauges(meter) -> None:
    with _gauge_lock:
        if any(known is meter for known in _gauge_meters):
            return
        _gauge_meters.append(meter)
        meter.create_observable_gauge("slm.kafka.broker.silence", callbacks=[_silence], unit="s",
                                      description="Seconds since the broker last answered the consumer loop "
                                                  "(since the loop started, before the first answer)")
        meter.create_observable_gauge("slm.kafka.lag", callbacks=[_lag], unit="{message}",
                                      description="Records behind the end of each assigned partition")
