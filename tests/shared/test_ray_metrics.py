"""The bridge from the task instruments to Ray's metrics, against a recording stand-in for
:mod:`ray.util.metrics` (the real one needs a Ray worker; tests/services/test_ray_replicas.py
scrapes it on a real cluster)."""

from __future__ import annotations

import bisect

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

from shared.telemetry.instruments import LATENCY_BUCKETS_MS, TaskInstruments
from shared.telemetry.ray_metrics import RayMetricsExporter, prometheus_name


class LoopHealth:
    """What the gauges read of a consumer loop."""

    running = True

    def __init__(self, silent_s: float, partition_lag: dict) -> None:
        self.silent_s, self.partition_lag = silent_s, partition_lag

    def seconds_silent(self) -> float:
        return self.silent_s


class Recorded:
    def __init__(self, name, description="", tag_keys=(), boundaries=None):
        self.name, self.tag_keys, self.boundaries = name, tag_keys, boundaries
        self.calls: list[tuple[float, dict]] = []

    def _record(self, value, tags):
        assert set(tags) == set(self.tag_keys), (tags, self.tag_keys)
        self.calls.append((value, tags))

    inc = set = observe = _record


class RecordingRayMetrics:
    def __init__(self):
        self.created: dict[str, Recorded] = {}

    def __getattr__(self, kind):
        def create(name, **options):
            assert name not in self.created, f"{name} registered twice"
            self.created[name] = metric = Recorded(name, **options)
            metric.kind = kind
            return metric
        return create


def _bridge():
    ray_metrics = RecordingRayMetrics()
    reader = PeriodicExportingMetricReader(RayMetricsExporter(ray_metrics), export_interval_millis=10**9)
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    return TaskInstruments("sentiment", "m-1", meter=meter), reader, ray_metrics, meter


def test_counters_reach_ray_as_increments_since_the_last_export():
    instruments, reader, ray_metrics, _ = _bridge()
    instruments.record_batch(polled=5, results=4, review=1, dlq_types={"schema": 1}, latency_ms=3.0, path="kafka")
    reader.force_flush()
    instruments.record_batch(polled=2, results=2, review=0, dlq_types={}, latency_ms=3.0, path="kafka")
    reader.force_flush()
    requests = ray_metrics.created["slm_requests"]
    assert requests.kind == "Counter"
    assert [value for value, _ in requests.calls] == [5, 2]  # not 5 then 7
    assert requests.calls[0][1] == {"task": "sentiment", "model": "m-1", "role": "primary", "path": "kafka"}
    assert [value for value, _ in ray_metrics.created["slm_dlq"].calls] == [1]


def test_histograms_reach_ray_bucket_by_bucket():
    instruments, reader, ray_metrics, _ = _bridge()
    recorded = [0.4, 3.0, 3.5, 70.0, 99_999.0]
    instruments.record_latencies(recorded, path="rest")
    reader.force_flush()
    latency = ray_metrics.created["slm_request_latency_milliseconds"]
    assert latency.kind == "Histogram" and latency.boundaries == list(LATENCY_BUCKETS_MS)
    observed = sorted(value for value, _ in latency.calls)
    assert len(observed) == len(recorded)
    # Each value lands in the bucket its original was counted in (le: value <= bound).
    bucket = lambda value: bisect.bisect_left(LATENCY_BUCKETS_MS, value)  # noqa: E731
    assert [bucket(v) for v in observed] == [bucket(v) for v in recorded]
    assert observed[-1] == 99_999.0  # the overflow bucket: the largest value seen


def test_gauges_reach_ray_with_their_labels_and_other_instruments_stay_out():
    instruments, reader, ray_metrics, meter = _bridge()
    loop = LoopHealth(2.5, {("s.requests", 0): 7, ("s.requests", 1): 0})
    instruments.observe_loop(loop)
    meter.create_counter("http.server.requests").add(1)
    reader.force_flush()
    lag = ray_metrics.created["slm_kafka_lag"]
    assert lag.kind == "Gauge"
    assert sorted((tags["partition"], value) for value, tags in lag.calls) == [("0", 7), ("1", 0)]
    assert ray_metrics.created["slm_kafka_broker_silence_seconds"].calls[0][0] == 2.5
    assert not [name for name in ray_metrics.created if not name.startswith("slm_")]


def test_names_match_the_prometheus_readers():
    assert prometheus_name("slm.batch.latency", "ms") == "slm_batch_latency_milliseconds"
    assert prometheus_name("slm.kafka.broker.silence", "s") == "slm_kafka_broker_silence_seconds"
    assert prometheus_name("slm.requests", "{request}") == "slm_requests"
    assert prometheus_name("slm.score", "1") == "slm_score"


def test_a_gauge_series_no_longer_observed_goes_to_zero_in_ray():
    instruments, reader, ray_metrics, _ = _bridge()
    loop = LoopHealth(0.5, {("s.requests", 0): 7, ("s.requests", 1): 3})
    instruments.observe_loop(loop)
    reader.force_flush()
    loop.partition_lag = {("s.requests", 0): 4}  # partition 1 went to another replica
    reader.force_flush()
    last = {}
    for value, tags in ray_metrics.created["slm_kafka_lag"].calls:
        last[tags["partition"]] = value
    assert last == {"0": 4, "1": 0}
