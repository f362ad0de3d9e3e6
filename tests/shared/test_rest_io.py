"""The lean REST path answers a JSON API exactly as BentoML's own path does, and traces it as one server span.

A small BentoML service is served twice, once as BentoML builds it and once with
:class:`shared.rest_io.LeanApiMiddleware`, and every answer is compared.
"""

from __future__ import annotations

from typing import Annotated

import bentoml
import pytest
from bentoml.exceptions import InvalidArgument, ServiceUnavailable
from bentoml.validators import ContentType
from opentelemetry.trace import SpanKind
from pydantic import BaseModel, ConfigDict, Field
from starlette.testclient import TestClient

from shared import rest_io
from shared.bento import BENTOML_OFF
from shared.compat import json_apis
from shared.rest_io import LeanApiMiddleware, untraced_routes
from tests.support.spans import record_spans

TRACE, CALLER = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: Annotated[str, Field(min_length=1)]


class Answer(BaseModel):
    text: str
    length: int
    ratio: float


def probe_service(lean: bool):
    """A service whose API answers, or raises what its items ask for."""

    # BentoML's metrics off, as in the task services: its middleware registers its series globally, once.
    @bentoml.service(name="lean-probe", **BENTOML_OFF)
    class Probe:
        @bentoml.api(route="/echo")
        async def echo(self, items: Annotated[list[Item], Field(min_length=1)]
                       ) -> Annotated[list[Answer], ContentType("application/json")]:
            failures = {"overloaded": ServiceUnavailable("queue full"), "refused": InvalidArgument("no such thing"),
                        "boom": RuntimeError("boom")}
            if items[0].text in failures:
                raise failures[items[0].text]
            return [Answer(text=item.text, length=len(item.text), ratio=1 / 3) for item in items]

    if lean:
        Probe.add_asgi_middleware(LeanApiMiddleware, apis=json_apis(Probe))
    return Probe


BODIES = {
    "answered": b'{"items": [{"text": "hello"}, {"text": "caf\\u00e9"}]}',
    "schema": b'{"items": [{"text": ""}, {"colour": "red"}]}',
    "missing": b"{}",
    "empty body": b"",
    "malformed": b"{oops",
    "overloaded": b'{"items": [{"text": "overloaded"}]}',
    "refused": b'{"items": [{"text": "refused"}]}',
    "boom": b'{"items": [{"text": "boom"}]}',
}


def answers(lean: bool) -> dict[str, tuple[int, object, bool]]:
    """Status, JSON body, and whether BentoML's handler wrote the answer (its Server header)."""
    with TestClient(probe_service(lean).to_asgi(), raise_server_exceptions=False) as client:
        out = {}
        for name, body in BODIES.items():
            response = client.post("/echo", content=body, headers={"content-type": "application/json"})
            out[name] = (response.status_code, response.json(), "BentoML" in response.headers.get("server", ""))
        return out


@pytest.fixture(scope="module")
def both():
    return answers(lean=False), answers(lean=True)


@pytest.mark.parametrize("case", list(BODIES))
def test_every_answer_is_bentomls_status_and_body(both, case):
    bentoml_answer, lean_answer = both
    assert lean_answer[case][:2] == bentoml_answer[case][:2]


def test_the_lean_layer_answers_valid_requests_and_failures_and_leaves_invalid_ones_to_bentoml(both):
    bentoml_answer, lean_answer = both
    assert bentoml_answer["answered"][0] == 200 and bentoml_answer["answered"][2]
    assert lean_answer["answered"] == (200, [{"text": "hello", "length": 5, "ratio": 1 / 3},
                                             {"text": "café", "length": 4, "ratio": 1 / 3}], False)
    for case in ("overloaded", "refused", "boom"):
        assert not lean_answer[case][2], case
    assert lean_answer["overloaded"][0] == 503 and lean_answer["boom"][0] == 500 and lean_answer["refused"][0] == 400
    for case in ("schema", "missing", "empty body", "malformed"):
        assert lean_answer[case][0] == 400 and lean_answer[case][2], case  # BentoML's path (422 is shared/http.py's)


def test_other_methods_and_paths_pass_through():
    with TestClient(probe_service(lean=True).to_asgi()) as client:
        assert client.get("/echo").status_code == 405
        assert "/echo" in client.get("/docs.json").json()["paths"]


@pytest.fixture
def spans(monkeypatch):
    return record_spans(monkeypatch, rest_io)


def test_a_request_is_one_server_span_continuing_the_callers_trace(spans):
    with TestClient(probe_service(lean=True).to_asgi()) as client:
        traced = {"content-type": "application/json", "traceparent": f"00-{TRACE}-{CALLER}-01"}
        assert client.post("/echo", content=BODIES["answered"], headers=traced).status_code == 200
        assert client.post("/echo", content=BODIES["schema"], headers=traced).status_code == 400
    answered, refused = spans.get_finished_spans()
    for span in (answered, refused):
        assert span.name == "POST /echo" and span.kind == SpanKind.SERVER
        assert format(span.context.trace_id, "032x") == TRACE and format(span.parent.span_id, "016x") == CALLER
    assert answered.attributes["http.status_code"] == 200 and refused.attributes["http.status_code"] == 400


def test_bentomls_tracing_leaves_exactly_the_lean_routes():
    from opentelemetry.util.http import ExcludeList

    excluded = ExcludeList(untraced_routes(json_apis(probe_service(lean=False))))
    assert excluded.url_disabled("http://127.0.0.1:3000/echo")
    assert not excluded.url_disabled("http://127.0.0.1:3000/echo/submit")
    assert not excluded.url_disabled("http://127.0.0.1:3000/docs.json")
