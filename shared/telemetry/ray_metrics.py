"""The task's ``slm.*`` instruments, mirrored into Ray's metrics in a Ray Serve replica.

Prometheus scrapes a Ray cluster on each node's metrics port (8080), where Ray's agent exports
what every worker process on the node records through :mod:`ray.util.metrics`; a replica's own
``/metrics`` is one replica of many, behind a proxy that picks one per request. So in a replica
a periodic reader hands each collection to Ray: counters as their increments, gauges as their
values, histograms bucket by bucket. Ray prefixes the names with ``ray_``; the chart's
ServiceMonitor drops that prefix again, so the dashboard and alerts read ``slm_*`` in both modes.

A histogram reaches Ray as observations, one per counted value, at the middle of its bucket
(the overflow bucket: the largest value seen). Counts and buckets are exact; ``_sum`` is an
estimate within the bucket widths.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry.sdk.metrics import Counter, Histogram, ObservableCounter, ObservableGauge, UpDownCounter
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram as HistogramData,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
    Sum,
)

__all__ = ["RayMetricsExporter", "prometheus_name", "ray_metrics_reader"]

logger = logging.getLogger(__name__)

EXPORT_INTERVAL_MS = 5_000
_UNIT_SUFFIXES = {"ms": "_milliseconds", "s": "_seconds", "By": "_bytes"}


def prometheus_name(name: str, unit: str) -> str:
    """The name the Prometheus reader gives an instrument, without a counter's ``_total``:
    dots to underscores, and the unit's suffix (none for ``1`` and ``{annotations}``)."""
    return name.replace(".", "_") + _UNIT_SUFFIXES.get(unit, "")


class RayMetricsExporter(MetricExporter):
    """Records each collection of ``slm.*`` metrics through :mod:`ray.util.metrics`.

    Counters and histograms are collected as deltas: what happened since the last export.

    Args:
        ray_metrics: the module whose ``Counter``, ``Gauge`` and ``Histogram`` receive them
            (:mod:`ray.util.metrics`, imported on first use).
        prefix (`str`): only instruments whose name starts with it are mirrored.
    """

    def __init__(self, ray_metrics: Any = None, prefix: str = "slm.") -> None:
        super().__init__(preferred_temporality={
            Counter: AggregationTemporality.DELTA, Histogram: AggregationTemporality.DELTA,
            ObservableCounter: AggregationTemporality.DELTA, UpDownCounter: AggregationTemporality.CUMULATIVE,
            ObservableGauge: AggregationTemporality.CUMULATIVE})
        self._ray_metrics = ray_metrics
        self.prefix = prefix
        self._metrics: dict[tuple, Any] = {}
        self._gauge_tags: dict[str, set[tuple]] = {}  # a gauge's label sets at the last export

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs) -> MetricExportResult:
        for resource_metrics in metrics_data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name.startswith(self.prefix):
                        self._mirror(metric)
        return MetricExportResult.SUCCESS

    def _mirror(self, metric) -> None:
        name = prometheus_name(metric.name, metric.unit or "")
        data = metric.data
        reported = set()
        for point in data.data_points:
            tags = {key: str(value) for key, value in point.attributes.items()}
            if isinstance(data, Sum) and data.is_monotonic:
                if point.value > 0:
                    self._metric("Counter", name, metric.description, tags).inc(point.value, tags)
            elif isinstance(data, (Sum, Gauge)):
                self._metric("Gauge", name, metric.description, tags).set(point.value, tags)
                reported.add(tuple(sorted(tags.items())))
            elif isinstance(data, HistogramData):
                self._observe(name, metric.description, point, tags)
        if isinstance(data, Gauge) or (isinstance(data, Sum) and not data.is_monotonic):
            # Ray keeps a gauge's last value for good: a series no longer observed (the lag of a
            # partition now assigned to another replica) is set to 0, or sums over replicas
            # would count it twice.
            for gone in self._gauge_tags.get(name, set()) - reported:
                tags = dict(gone)
                self._metric("Gauge", name, metric.description, tags).set(0, tags)
            self._gauge_tags[name] = reported

    def _observe(self, name: str, description: str, point, tags: dict[str, str]) -> None:
        bounds = list(point.explicit_bounds)
        histogram = self._metric("Histogram", name, description, tags, boundaries=bounds)
        for index, count in enumerate(point.bucket_counts):
            if not count:
                continue
            if index == len(bounds):
                value = point.max
            else:
                lower = bounds[index - 1] if index else min(point.min, bounds[0])
                value = (lower + bounds[index]) / 2
            for _ in range(count):
                histogram.observe(value, tags)

    def _metric(self, kind: str, name: str, description: str, tags: dict[str, str], **options):
        key = (kind, name, tuple(sorted(tags)))
        metric = self._metrics.get(key)
        if metric is None:
            if self._ray_metrics is None:
                import ray.util.metrics as ray_metrics

                self._ray_metrics = ray_metrics
            metric = getattr(self._ray_metrics, kind)(name, description=description, tag_keys=key[2], **options)
            self._metrics[key] = metric
        return metric

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs) -> None:
        pass


def ray_metrics_reader() -> PeriodicExportingMetricReader:
    return PeriodicExportingMetricReader(RayMetricsExporter(), export_interval_millis=EXPORT_INTERVAL_MS)
