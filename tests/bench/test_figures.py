"""The benchmark's arithmetic (bench.figures): percentiles, ratios to the limit, the issue's targets."""

from __future__ import annotations

import pytest

from bench.figures import TARGETS, figure_rows, percentiles, ratios, target_rows


def _result(**overrides) -> dict:
    result = {
        "task": "sentiment", "rss_mb": 380.0,
        "limit_int8": {"items_per_s": 300.0, "best_batch": "sorted 32", "batch1_ms": 5.0,
                       "by_batch": {"1": 200.0, "sorted 32": 300.0}},
        "rest": {"single": [{"concurrency": 1, "items_per_s": 160.0, "p50": 6.0, "p99": 9.0},
                            {"concurrency": 32, "items_per_s": 255.0, "p50": 100.0, "p99": 150.0},
                            {"concurrency": 128, "items_per_s": 270.0, "p50": 400.0, "p99": 600.0}],
                 "batch16": [], "half_load": {"rate": 135.0, "items_per_s": 134.0, "p50": 8.0, "p99": 40.0}},
        "kafka": {"full_speed": {"items_per_s": 285.0, "p50": 900.0, "p99": 1500.0},
                  "half_speed": {"rate": 142.5, "items_per_s": 140.0, "p50": 20.0, "p99": 55.0}},
    }
    result.update(overrides)
    return result


def test_percentiles_of_latencies():
    values = [float(v) for v in range(1, 101)]
    assert percentiles(values) == {"p50": 50.5, "p95": 95.05, "p99": 99.01}
    assert percentiles([]) == {"p50": None, "p95": None, "p99": None}


def test_ratios_give_throughputs_over_the_best_limit_and_latencies_over_the_batch1_time():
    assert ratios(_result()) == {
        "rest_c1_over_limit": 0.53, "rest_c32_over_limit": 0.85, "rest_c128_over_limit": 0.9,
        "kafka_over_limit": 0.95,
        "rest_c1_time_over_batch1": 1.25,  # 1000 / 160 = 6.25 ms per request over 5 ms
        "rest_p99_at_half_over_batch1": 8.0, "kafka_p99_at_half_over_batch1": 11.0}


def test_ratios_without_a_batch1_time_or_a_half_load_leave_those_out_or_empty():
    limit = {"items_per_s": 300.0, "best_batch": "32", "by_batch": {"32": 300.0}}
    assert "rest_c1_time_over_batch1" not in ratios(_result(limit_int8=limit))
    result = _result()
    del result["rest"]["half_load"]
    assert ratios(result)["rest_p99_at_half_over_batch1"] is None


def test_targets_table_says_which_are_met():
    rows = {figure: (value, target, met) for figure, value, target, met in target_rows(_result())}
    assert rows["REST c=32 / best limit"] == (0.85, ">= 0.8", "yes")
    assert rows["Kafka / best limit"] == (0.95, ">= 0.9", "yes")
    assert rows["REST c=1 time per request / batch-1 time per item"] == (1.25, "<= 1.3", "yes")
    assert rows["REST p99 at 50% of max rate / batch-1 time per item"] == (8.0, "<= 10", "yes")
    assert rows["Kafka p99 at 50% of max rate / batch-1 time per item"] == (11.0, "<= 10", "no")
    assert rows["RSS of the service (MB)"] == (380.0, "<= 400", "yes")
    assert "REST c=32 / peer (a) c=32" not in rows  # no peers in this run


def test_targets_table_has_the_peer_row_when_the_peers_ran_and_na_when_a_figure_is_missing():
    peer = {"rest": {"single": [{"concurrency": 32, "items_per_s": 85.0}]}}
    result = _result(peers={"fastapi": peer})
    del result["rest"]["half_load"]
    rows = {figure: (value, met) for figure, value, _, met in target_rows(result)}
    assert rows["REST c=32 / peer (a) c=32"] == (3.0, "no")
    assert rows["REST p99 at 50% of max rate / batch-1 time per item"] == (None, "n/a")


@pytest.mark.parametrize(("at_least", "value", "met"), [(True, 0.8, True), (True, 0.79, False),
                                                         (False, 1.3, True), (False, 1.31, False)])
def test_a_target_bound_counts_as_met(at_least, value, met):
    target = next(t for t in TARGETS if t.at_least is at_least)
    assert target.__class__(target.figure, target.key, 0.8 if at_least else 1.3, at_least).met(value) is met


def test_figure_rows_start_with_the_limits_and_end_with_kafka():
    rows = figure_rows(_result())
    assert rows[0] == ("model alone, batch 1", 200.0, 0.67, None, None, None)
    assert rows[1] == ("model alone, best shape (sorted 32)", 300.0, 1.0, None, None, None)
    assert rows[3] == ("REST c=32", 255.0, 0.85, 100.0, 150.0, 30.0)
    assert rows[5] == ("REST paced at 135/s (50% of max)", 134.0, 0.45, 8.0, 40.0, 8.0)
    assert rows[-1] == ("Kafka paced at 142.5/s (50% of max)", 140.0, 0.47, 20.0, 55.0, 11.0)
