"""``slm bench``'s arithmetic and report, without services (the run itself is a benchmark, not a test)."""

from __future__ import annotations

import asyncio

from bench.harness import BenchPlan, _percentiles, _rest_load, _table


def test_percentiles_of_latencies():
    values = [float(v) for v in range(1, 101)]
    assert _percentiles(values) == {"p50": 50.5, "p95": 95.05, "p99": 99.01}
    assert _percentiles([]) == {"p50": None, "p95": None, "p99": None}


def test_quick_plan_is_smaller_than_the_full_one(tmp_path):
    full = BenchPlan.for_run(["sentiment"], tmp_path, "127.0.0.1:9092", quick=False)
    quick = BenchPlan.for_run(["sentiment"], tmp_path, "127.0.0.1:9092", quick=True)
    assert full.concurrencies == [1, 8, 32, 128]
    assert set(quick.concurrencies) < set(full.concurrencies)
    assert quick.rest_seconds < full.rest_seconds and quick.kafka_records < full.kafka_records


def test_table_reports_ratios_to_the_int8_limit():
    result = {"task": "sentiment", "limit_int8": {"items_per_s": 200.0, "best_batch": 32},
              "rest": {"single": [{"concurrency": 1, "items_per_s": 50.0, "p99": 30.0},
                                  {"concurrency": 32, "items_per_s": 150.0, "p99": 90.0}]},
              "kafka": {"full_speed": {"items_per_s": 170.0}, "half_speed": {"p99": 40.0}},
              "cold_start_s": 3.5, "rss_mb": 480.0}
    row = _table([result]).splitlines()[-1]
    assert row.startswith("| sentiment | 200.0 (32) | 50.0 | 150.0 | 0.75 | 90.0 | 170.0 | 0.85 | 40.0 |")


def test_rest_load_counts_items_and_errors(monkeypatch):
    import httpx

    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200 if len(calls) % 2 else 503, json=[])

    original = httpx.AsyncClient.__init__

    def patched(self, *args, **kwargs):
        kwargs["transport"] = httpx.MockTransport(handler)
        original(self, *args, **kwargs)

    monkeypatch.setattr(httpx.AsyncClient, "__init__", patched)
    result = asyncio.run(_rest_load("http://test/predict", [{"items": [{"text": "a"}, {"text": "b"}]}], 2, 0.2))
    assert result["requests"] + result["errors"] == len(calls) > 0
    assert result["errors"] == len(calls) // 2
    assert result["items_per_s"] > 0
