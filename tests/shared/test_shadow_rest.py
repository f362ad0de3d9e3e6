"""A shadow's REST refusal (:mod:`shared.shadow_rest`), without a service."""

from __future__ import annotations

import asyncio
import json

from shared.shadow_rest import ShadowRestMiddleware


def _call(app, path: str, method: str = "POST") -> tuple[int, bytes]:
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app({"type": "http", "path": path, "method": method}, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


async def _ok(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def test_a_shadow_refuses_rest_predictions_with_503_and_serves_the_rest():
    app = ShadowRestMiddleware(_ok, api_routes=frozenset({"/predict"}), task="sentiment")
    status, body = _call(app, "/predict")
    assert status == 503
    error = json.loads(body)["error"]
    assert "shadow" in error and "sentiment.shadow.results" in error
    for path, method in (("/readyz", "GET"), ("/livez", "GET"), ("/metrics", "GET"), ("/docs.json", "GET")):
        assert _call(app, path, method) == (200, b"ok")
