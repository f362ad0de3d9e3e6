"""The sentiment service over HTTP, started as ``slm serve`` in a child process."""

from __future__ import annotations

import httpx
import pytest

from shared.runtime import OnnxTextClassifier
from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def service(quick_model_dir, tmp_path_factory):
    proc = ServiceProcess("sentiment", quick_model_dir, tmp_path_factory.mktemp("svc") / "serve.log",
                          env={"SLM_MAX_BATCH_SIZE": "8"})
    proc.wait_ready()
    yield proc
    assert proc.terminate() == 0


def _predict(service, items):
    return httpx.post(f"{service.url}/predict", json={"items": items}, timeout=30)


def test_health_and_readiness(service):
    assert httpx.get(f"{service.url}/healthz").status_code == 200
    assert httpx.get(f"{service.url}/readyz").status_code == 200


def test_batch_results_match_the_model_in_order(service, quick_model_dir):
    texts = ["Shares of $XYZ tumble after guidance cut", "Apple hits record high on strong iPhone sales",
             "Fed minutes due at 2pm", "Oil slides as inventories build"]
    response = _predict(service, [{"id": f"r{i}", "text": t} for i, t in enumerate(texts)])
    assert response.status_code == 200
    body = response.json()
    assert [r["id"] for r in body] == ["r0", "r1", "r2", "r3"]
    expected = OnnxTextClassifier(quick_model_dir).predict(texts)
    for result, want in zip(body, expected):
        assert result["label"] == want.label
        assert result["score"] == pytest.approx(want.score, abs=1e-4)
        assert set(result["scores"]) == {"bearish", "bullish", "neutral"}
        assert result["review"] == want.review
        assert result["task"] == "sentiment" and result["model"].startswith("sentiment-minilm-l6:")
        assert [t["label"] for t in result["top"]][0] == result["label"]


def test_single_item_without_id_gets_a_generated_id(service):
    response = _predict(service, [{"text": "Tesla deliveries beat estimates"}])
    assert response.status_code == 200
    (result,) = response.json()
    assert len(result["id"]) == 32


@pytest.mark.parametrize(
    ("items", "field"),
    [
        ([{"text": "   "}], ["items", 0, "text"]),
        ([{"id": "x"}], ["items", 0, "text"]),
        ([{"text": 5}], ["items", 0, "text"]),
        ([{"text": "ok", "colour": "red"}], ["items", 0, "colour"]),
        ([], ["items"]),
        ([{"text": f"item {i}"} for i in range(9)], ["items"]),  # over SLM_MAX_BATCH_SIZE=8
    ],
)
def test_schema_violations_get_422_naming_the_field(service, items, field):
    response = _predict(service, items)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert [d["loc"] for d in detail][0] == field


@pytest.mark.parametrize("body", [{}, {"itmes": [{"text": "typo in the key"}]}])
def test_a_body_without_items_gets_422_not_a_prediction(service, body):
    response = httpx.post(f"{service.url}/predict", json=body, timeout=30)
    assert response.status_code == 422
    assert any(d["loc"][0] in ("items", "itmes") for d in response.json()["detail"])


def test_not_json_is_a_client_error(service):
    response = httpx.post(f"{service.url}/predict", content=b"{oops", headers={"content-type": "application/json"})
    assert response.status_code == 400  # malformed JSON, not a schema violation
    assert "json" in response.text.lower()


def test_openapi_documents_the_predict_route(service):
    spec = httpx.get(f"{service.url}/docs.json").json()
    assert "/predict" in spec["paths"]
    assert "post" in spec["paths"]["/predict"]
