"""The sentiment service over HTTP, started as ``slm serve`` in a child process."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from shared.runtime import OnnxTextClassifier
from tests.support.processes import ServiceProcess, wait_for

pytestmark = pytest.mark.slow

MAX_BODY = 65_536
READ_TIMEOUT_S = 2


@pytest.fixture(scope="module")
def service(quick_model_dir, tmp_path_factory):
    proc = ServiceProcess("sentiment", quick_model_dir, tmp_path_factory.mktemp("svc") / "serve.log",
                          env={"SLM_MAX_BATCH_SIZE": "8", "SLM_MAX_BODY_BYTES": str(MAX_BODY),
                               "SLM_BODY_READ_TIMEOUT_S": str(READ_TIMEOUT_S),
                               "SLM_HEADER_READ_TIMEOUT_S": str(READ_TIMEOUT_S)})
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


def _client_error_shape(response) -> dict:
    body = response.json()
    assert isinstance(body, dict) and isinstance(body["error"], str) and isinstance(body["detail"], list), body
    return body


def test_not_json_error_body_has_the_declared_shape(service):
    response = httpx.post(f"{service.url}/predict", content=b"{oops", headers={"content-type": "application/json"})
    assert response.status_code == 400
    _client_error_shape(response)


@pytest.mark.parametrize("content_type", ["multipart/form-data", "multipart/form-data; boundary=x0x0",
                                          "text/plain", "application/x-www-form-urlencoded"])
def test_a_body_that_is_not_json_gets_415_not_500(service, content_type):
    response = httpx.post(f"{service.url}/predict", content=b'--x0x0\r\nContent-Disposition: form-data; name="a"'
                          b'\r\n\r\nb\r\n--x0x0--\r\n', headers={"content-type": content_type}, timeout=30)
    assert response.status_code == 415
    assert "application/json" in _client_error_shape(response)["error"]


def test_a_real_multipart_upload_gets_415(service):
    response = httpx.post(f"{service.url}/predict", files={"items": ("items.json", b'[{"text": "hi"}]')}, timeout=30)
    assert response.status_code == 415


def test_openapi_declares_the_client_errors_with_their_bodies(service):
    spec = httpx.get(f"{service.url}/docs.json").json()
    responses = spec["paths"]["/predict"]["post"]["responses"]
    schemas = spec["components"]["schemas"]
    for status in ("400", "408", "413", "415", "422"):
        assert status in responses, status
    bad = responses["400"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(schemas[bad]["required"]) == {"error", "detail"}
    unprocessable = responses["422"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    item = schemas[unprocessable]["properties"]["detail"]["items"]
    assert {"loc", "msg", "type"} <= set(item["required"])
    # And the documented shape is what a 422 really carries.
    real = _predict(service, [{"id": "x"}]).json()
    assert set(real) >= set(schemas[unprocessable]["required"]) and real["detail"][0]["loc"]


def test_a_body_over_the_limit_gets_413_before_it_is_read(service):
    big = b'{"items": [{"text": "' + b"a" * (MAX_BODY + 10) + b'"}]}'
    response = httpx.post(f"{service.url}/predict", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert str(MAX_BODY) in _client_error_shape(response)["error"]

    def chunks():  # no Content-Length: the limit applies as the body arrives
        yield b'{"items": [{"text": "'
        for _ in range(MAX_BODY // 4096 + 2):
            yield b"a" * 4096

    response = httpx.post(f"{service.url}/predict", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


def _connect(service) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", service.port), timeout=15)
    return sock


def test_a_client_that_sends_its_body_too_slowly_gets_408(service):
    with _connect(service) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{")
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert time.monotonic() - started < READ_TIMEOUT_S + 5


def test_a_client_that_dribbles_its_request_head_is_disconnected(service):
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Slow: " + b"a" * 100
    with _connect(service) as sock:
        started = time.monotonic()
        closed = False
        for byte in head:  # one byte every 0.25 s: 30 s for the whole head
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            sock.settimeout(0.25)
            try:
                if sock.recv(4096) == b"":
                    closed = True
                    break
            except socket.timeout:
                pass
    assert closed, "the server kept a connection whose request head never completed"
    assert time.monotonic() - started < READ_TIMEOUT_S + 5


def test_a_client_error_is_one_warning_line_without_the_input(service):
    secret = "SECRET-INPUT-7f3a"
    start = len(service.log())  # the module's service has logged other tests' requests before
    response = _predict(service, [{"text": secret, "shade_7f3a": "red"}])
    assert response.status_code == 422
    wait_for(lambda: "items.0.shade_7f3a" in service.log()[start:], 30, what="the client error's log line")
    log = service.log()[start:]
    lines = [line for line in log.splitlines() if "items.0.shade_7f3a" in line]
    assert len(lines) == 1 and "WARNING" in lines[0] and "status=422" in lines[0], lines
    assert secret not in log
    assert "Traceback" not in log


def test_a_request_logs_nothing_at_info(service):
    start = len(service.log())
    assert _predict(service, [{"text": "Banks steady ahead of the rate decision"}]).status_code == 200
    # A client error's WARNING is logged while its request is handled: once it is there, so is
    # anything logged for the request before it.
    assert _predict(service, [{"text": "ok", "marker_b41c": 1}]).status_code == 422
    wait_for(lambda: "marker_b41c" in service.log()[start:], 30, what="the client error's log line")
    lines = [line for line in service.log()[start:].splitlines() if "/predict" in line]
    assert len(lines) == 1 and "WARNING" in lines[0] and "marker_b41c" in lines[0], lines
