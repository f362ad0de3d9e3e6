"""The lean REST path: a service's JSON API answered without BentoML's per-request machinery.

For every request to an API route BentoML 1.4 builds a starlette ``Request``, enters the service
context, picks a serde, wraps the output in a root model, writes it with the standard library's
encoder and answers through a streaming response with background tasks. For the task services'
``POST /predict`` none of that does anything the answer needs, and on two cores it cost as much
CPU as the model (``docs/performance.md``, "Lean REST path").

:class:`LeanApiMiddleware` answers those routes itself: the body (already read and limited by
:class:`shared.http.RequestGuardMiddleware`) is validated from bytes by the same pydantic model
BentoML would use, the service's own API method is called (``services/<task>/service.py``, which
calls ``ServedTask.submit``), and the output is written with orjson. What stays BentoML's:

- every other route (``/docs.json``, probes, ``/metrics``) and every API it cannot serve this way
  (:func:`shared.compat.json_apis`);
- a body that fails validation: it is handed to BentoML's own path, so the 422 and 400 answers,
  their bodies and their one log line are exactly those of every other client error;
- an exception from the API method is answered and logged as BentoML does
  (:func:`shared.compat.bentoml_error_answer`).

It sits innermost among the services' middlewares, so API keys, the shadow's refusal, ``/metrics``,
the 422 status, the body limits and BentoML's timeout apply as before.

It also opens the request's server span (``POST /predict``), continuing the caller's trace from its
``traceparent``: BentoML's tracing middleware leaves these routes alone (:func:`untraced_routes`),
because it opened three more spans per request (receiving the body, starting and ending the
answer) and recorded four histograms, which the model's own spans and ``/metrics`` make redundant.
"""

from __future__ import annotations

import logging
import re

import bentoml
import orjson
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.asgi import asgi_getter
from opentelemetry.trace import SpanKind, Status, StatusCode
from pydantic import ValidationError

from shared.compat import BENTOML_REQUEST_ERROR_LOGGER, JsonApi, api_function, bentoml_error_answer

__all__ = ["LeanApiMiddleware", "untraced_routes"]

tracer = trace.get_tracer(__name__)

JSON_HEADERS = [(b"content-type", b"application/json")]


def untraced_routes(apis: list[JsonApi]) -> list[str]:
    """BentoML's ``tracing.excluded_urls`` for the routes this layer traces itself: regular
    expressions searched in the request's URL, which ends with its path (no query)."""
    return [re.escape(api.route) + "$" for api in apis]


class LeanApiMiddleware:
    """Answer ``POST`` to the given JSON APIs (:func:`shared.compat.json_apis`) directly.

    Args:
        app: the ASGI app (BentoML's, inside the other middlewares).
        apis (`list[JsonApi]`): the service's APIs to answer.
    """

    def __init__(self, app, apis: list[JsonApi]) -> None:
        self.app = app
        self.apis: dict[str, JsonApi] = {api.route: api for api in apis}
        self._instance: object | None = None
        self._functions: dict[str, object] = {}
        # BentoML's own logger, so that shared.http's filter turns a client's mistake into one line.
        self._error_log = logging.getLogger(BENTOML_REQUEST_ERROR_LOGGER)

    async def __call__(self, scope, receive, send) -> None:
        api = self.apis.get(scope.get("path", "")) if scope["type"] == "http" else None
        if api is None or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        body = await _whole_body(receive)
        if body is None:  # the client left
            return
        with tracer.start_as_current_span(f"POST {api.route}", context=propagate.extract(scope, getter=asgi_getter),
                                          kind=SpanKind.SERVER, attributes={
                                              "http.method": "POST", "http.route": api.route,
                                              "http.target": scope.get("path", "")}) as span:
            try:
                arguments = api.arguments(body)
            except ValidationError:
                await self.app(scope, _replaying(body, receive), _StatusOnSpan(send, span))
                return
            status, answer = await self._answer(api, arguments, scope)
            _set_status(span, status)
            await send({"type": "http.response.start", "status": status,
                        "headers": [*JSON_HEADERS, (b"content-length", str(len(answer)).encode())]})
            await send({"type": "http.response.body", "body": answer})

    async def _answer(self, api: JsonApi, arguments: dict, scope) -> tuple[int, bytes]:
        instance = bentoml.get_current_service()  # created by the app's lifespan, again if it restarts
        if instance is not self._instance:
            self._instance, self._functions = instance, {}
        function = self._functions.get(api.name)
        if function is None:  # looked up once: BentoML's lookup inspects the method's signature
            function = self._functions[api.name] = api_function(instance, api.name)
        try:
            return 200, api.answer(await function(**arguments))
        except Exception as exc:  # noqa: BLE001 - answered as BentoML answers it, and logged
            self._error_log.error("Exception on %s [%s]", scope.get("path"), scope.get("method"), exc_info=True)
            status, payload = bentoml_error_answer(exc)
            return status, orjson.dumps(payload)


def _set_status(span, status: int) -> None:
    span.set_attribute("http.status_code", status)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))


class _StatusOnSpan:
    """A ``send`` that records the answer's status on the request's span."""

    def __init__(self, send, span) -> None:
        self.send, self.span = send, span

    async def __call__(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            _set_status(self.span, message["status"])
        await self.send(message)


async def _whole_body(receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replaying(body: bytes, receive):
    """A ``receive`` that gives ``body`` once, then whatever the connection says next."""
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
