"""Drift: the PSI arithmetic, the bins, the sliding window, the gauge, and the shipped sentiment model
fed its own test set and a shifted stream (helpdesk tickets)."""

from __future__ import annotations

import logging
import math
import threading
from datetime import datetime, timezone

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from shared.drift import (EPSILON, NONE_LABEL, OTHER_LABEL, REFERENCE_FILE, AnswerFeatures, CategoricalBins,
                          DriftMonitor, DriftReference, DriftWindow, NumericBins, answer_features, build_reference,
                          drift_monitors, psi, register_drift_gauge)
from shared.processors import Received
from shared.schemas import TaskRequestV1
from tests.support.processes import REPO_ROOT

SHIPPED_SENTIMENT = REPO_ROOT / "models" / "sentiment"


# --- PSI ------------------------------------------------------------------------------------

def test_identical_distributions_give_zero():
    assert psi([10, 20, 30, 40], [10, 20, 30, 40]) == 0.0
    # Shares, not counts, are compared: the same shape at another size is no shift.
    assert psi([10, 20, 30, 40], [1, 2, 3, 4]) == pytest.approx(0.0, abs=1e-12)


def test_a_known_shift_gives_the_hand_computed_value():
    # Shares 0.5/0.5 -> 0.8/0.2: 0.3 ln(0.8/0.5) + (-0.3) ln(0.2/0.5) = 0.3 (ln 1.6 + ln 2.5) = 0.3 ln 4.
    assert psi([50, 50], [80, 20]) == pytest.approx(0.3 * math.log(4), rel=1e-12)
    assert psi([50, 50], [80, 20]) == pytest.approx(0.415888, abs=1e-6)


def test_an_empty_bin_counts_as_epsilon():
    # The reference's empty bin counts as EPSILON (not renormalised): 0.5 ln 2 + (0.5 - eps) ln(0.5 / eps).
    expected = 0.5 * math.log(2) + (0.5 - EPSILON) * math.log(0.5 / EPSILON)
    assert psi([100, 0], [50, 50]) == pytest.approx(expected, rel=1e-12)
    assert math.isfinite(psi([0, 100], [100, 0]))


def test_psi_refuses_mismatched_or_empty_counts():
    with pytest.raises(ValueError, match="different bins: 2 and 3"):
        psi([1, 1], [1, 1, 1])
    with pytest.raises(ValueError, match="counts on both sides"):
        psi([1, 1], [0, 0])


# --- Bins and features ------------------------------------------------------------------------

def test_numeric_bins_hold_values_up_to_their_upper_edge():
    bins = NumericBins((1.0, 2.0))
    assert [bins.index(v) for v in (0.5, 1.0, 1.5, 2.0, 2.5)] == [0, 0, 1, 1, 2]
    assert bins.names == ["(-inf, 1]", "(1, 2]", "(2, inf]"]


def test_quantile_edges_collapse_where_deciles_coincide():
    assert NumericBins.at_quantiles([1.0] * 50 + [2.0] * 50).edges == (1.0, 1.5, 2.0)
    assert NumericBins.at_quantiles(list(range(1, 101))).size == 10


def test_a_label_the_reference_never_saw_goes_to_the_other_bin():
    bins = CategoricalBins(("bearish", "bullish"))
    assert [bins.index(v) for v in ("bullish", "bearish", "neutral")] == [1, 0, 2]
    assert bins.names == ["bearish", "bullish", OTHER_LABEL]


def test_features_of_classification_and_entities_results_as_models_or_json():
    assert answer_features({"label": "bullish", "score": 0.9}, "abc") == AnswerFeatures(("bullish",), (0.9,), 3)
    spans = {"entities": [{"type": "PER", "score": 0.8}, {"type": "ORG", "score": 0.6}]}
    assert answer_features(spans) == AnswerFeatures(("PER", "ORG"), (0.8, 0.6), None)
    assert answer_features({"entities": []}, "no names") == AnswerFeatures((NONE_LABEL,), (), 8)
    assert answer_features({"id": "x"}) is None


def _answers(labels_scores_lengths):
    return [AnswerFeatures((label,), (score,), length) for label, score, length in labels_scores_lengths]


def test_a_reference_counts_its_own_answers_and_survives_a_round_trip(tmp_path):
    answers = _answers([("a", i / 100, 10 + i) for i in range(100)] + [("b", 0.5, 40)] * 20)
    reference = build_reference("sentiment", "m:1", answers, {"file": "f.csv"})
    assert reference.features["label"].counts == (100, 20, 0)
    assert sum(reference.features["score"].counts) == 120
    assert reference.psi_of(reference.counts_of(answers)) == {"label": 0.0, "score": 0.0, "length": 0.0, "max": 0.0}
    reference.write(tmp_path)
    assert DriftReference.read(tmp_path) == reference


# --- The window and the monitor -----------------------------------------------------------------

def _reference() -> DriftReference:
    answers = _answers([("a", 0.9, 10)] * 50 + [("b", 0.6, 100)] * 50)
    return build_reference("sentiment", "test-model:1", answers)


def test_the_window_keeps_the_last_answers_only():
    window = DriftWindow(_reference(), size=4, min_items=1)
    window.add(_answers([("b", 0.6, 100)] * 4))
    assert window.counts()["label"] == [0, 4, 0]
    window.add(_answers([("a", 0.9, 10)] * 3))
    assert window.counts()["label"] == [3, 1, 0]
    assert len(window) == 4
    # 3/4 against 1/2 and 1/4 against 1/2: 0.25 ln 1.5 + 0.25 ln 2.
    assert window.psi()["label"] == pytest.approx(0.25 * math.log(1.5) + 0.25 * math.log(2))


def test_a_window_short_of_its_minimum_reports_nothing():
    window = DriftWindow(_reference(), size=1000, min_items=100)
    window.add(_answers([("a", 0.9, 10)] * 99))
    assert window.psi() == {}
    window.add(_answers([("a", 0.9, 10)]))
    assert set(window.psi()) == {"label", "score", "length", "max"}


def test_the_window_stays_consistent_under_concurrent_observers():
    window = DriftWindow(_reference(), size=500, min_items=1)
    batch = _answers([("a", 0.9, 10), ("b", 0.6, 100)] * 10)

    def observe():
        for _ in range(100):
            window.add(batch)

    threads = [threading.Thread(target=observe) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts = window.counts()
    assert len(window) == 500
    # Every feature's counts add up to the answers the window holds: no update was lost or doubled.
    assert {name: sum(c) for name, c in counts.items()} == {"label": 500, "score": 500, "length": 500}
    assert min(min(c) for c in counts.values()) >= 0


def _received(texts: list[str]) -> list[Received]:
    return [Received(TaskRequestV1(text=t), f"id{i}", datetime.now(timezone.utc), 0.0) for i, t in enumerate(texts)]


def test_the_monitor_exports_its_psi_as_a_gauge_per_feature():
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    register_drift_gauge(meter)
    monitor = DriftMonitor("sentiment", "gauge-test:1", _reference(), window=100, meter=meter)
    monitor.observe(_received(["x" * 100] * 100), [{"label": "b", "score": 0.6}] * 100)
    points = {}
    for resource in reader.get_metrics_data().resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    if point.attributes.get("model") == "gauge-test:1":
                        points[(metric.name, point.attributes.get("feature"))] = point.value
    expected = monitor.psi()
    assert expected["label"] > 0.25  # all "b" against half "b"
    assert points == {**{("slm.drift.psi", f): v for f, v in expected.items()}, ("slm.drift.window", None): 100}


def test_a_model_folder_without_a_reference_gets_no_monitor(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="shared.drift"):
        assert drift_monitors("sentiment", "m:1", tmp_path, 1000) == []
    assert [r.getMessage() for r in caplog.records] == [
        f'no drift reference, no drift gauge task=sentiment model=m:1 file="{tmp_path / REFERENCE_FILE}"']


# --- The shipped sentiment model: its own test set, and a shifted stream -------------------------

def _shipped_sentiment_requests(task: str, limit: int | None) -> list[TaskRequestV1]:
    from pipelines.drift_reference import reference_requests
    from pipelines.kinds import recipe_class
    from pipelines.tasks import dataset_for
    from shared.runtime import read_model_info
    from shared.task_kinds import kind_named

    info = read_model_info(REPO_ROOT / "models" / task)
    recipe = recipe_class(kind_named(info.kind)).for_model(info)
    return reference_requests(recipe, dataset_for(task).test_file, limit=limit)


@pytest.fixture(scope="module")
def shipped_sentiment():
    from shared.task_kinds import load_processor

    reference = DriftReference.read(SHIPPED_SENTIMENT)
    assert reference is not None, f"{SHIPPED_SENTIMENT} has no {REFERENCE_FILE} (slm drift reference --task sentiment)"
    return load_processor("sentiment", SHIPPED_SENTIMENT, intra_op_threads=2), reference


def _fed(processor, reference: DriftReference, requests: list[TaskRequestV1]) -> dict[str, float]:
    monitor = DriftMonitor("sentiment", processor.model_id, reference, window=1000)
    for start in range(0, len(requests), 64):
        items = [Received.now(r) for r in requests[start:start + 64]]
        monitor.observe(items, processor.process(items))
    return monitor.psi()


def test_the_sentiment_model_fed_its_own_test_set_shows_no_drift(shipped_sentiment):
    processor, reference = shipped_sentiment
    assert reference.model == processor.model_id
    values = _fed(processor, reference, _shipped_sentiment_requests("sentiment", None))
    assert set(values) == {"label", "score", "length", "max"}
    assert values["max"] < 0.1, values


def test_the_sentiment_model_fed_helpdesk_tickets_shows_large_drift(shipped_sentiment):
    processor, reference = shipped_sentiment
    values = _fed(processor, reference, _shipped_sentiment_requests("helpdesk", 1000))
    assert values["max"] > 0.25, values
    # Longer texts, and mostly "neutral" answers: both move well past the threshold.
    assert values["length"] > 0.25 and values["label"] > 0.25, values
