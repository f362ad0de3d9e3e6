"""The drift gauge of a running service: ``slm_drift_psi`` on ``/metrics`` once its window has filled."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.drift import REFERENCE_FILE
from shared.runtime import read_model_info
from tests.support.processes import REPO_ROOT, ServiceProcess

pytestmark = pytest.mark.slow

SHIPPED_SENTIMENT = REPO_ROOT / "models" / "sentiment"
WINDOW = 192


def _drift_samples(url: str) -> dict[tuple[str, str | None], float]:
    response = httpx.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200
    return {(sample.name, sample.labels.get("feature")): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples
            if sample.name.startswith("slm_drift_")}


def test_the_sentiment_service_reports_drift_of_helpdesk_tickets_on_metrics(tmp_path):
    from pipelines.drift_reference import reference_requests
    from pipelines.kinds import recipe_class
    from pipelines.tasks import dataset_for
    from shared.task_kinds import kind_named

    assert (SHIPPED_SENTIMENT / REFERENCE_FILE).is_file()
    helpdesk = read_model_info(REPO_ROOT / "models" / "helpdesk")
    tickets = reference_requests(recipe_class(kind_named(helpdesk.kind)).for_model(helpdesk),
                                 dataset_for("helpdesk").test_file, limit=WINDOW)
    service = ServiceProcess("sentiment", SHIPPED_SENTIMENT, tmp_path / "serve.log",
                             env={"OTEL_SDK_DISABLED": "false", "SLM_DRIFT_WINDOW": str(WINDOW)}).wait_ready()
    try:
        # Below the window's minimum (its size here): no value yet.
        assert _drift_samples(service.url).get(("slm_drift_psi", "max")) is None
        for start in range(0, WINDOW, 64):
            items = [{"text": r.text} for r in tickets[start:start + 64]]
            assert httpx.post(f"{service.url}/predict", json={"items": items}, timeout=120).status_code == 200
        samples = _drift_samples(service.url)
    finally:
        service.terminate()
    assert samples[("slm_drift_window", None)] == WINDOW
    assert set(samples) >= {("slm_drift_psi", f) for f in ("label", "score", "length", "max")}
    assert samples[("slm_drift_psi", "length")] > 0.25
    assert samples[("slm_drift_psi", "max")] == max(samples[("slm_drift_psi", f)] for f in ("label", "score", "length"))
