"""HTTP hardening shared by the task services: what a reverse proxy in front would otherwise do.

- :class:`UnprocessableEntityMiddleware`: schema violations are 422, malformed JSON stays 400.
- :class:`RequestGuardMiddleware`: a body that is not JSON gets 415, one over the size limit
  413 (before it is read), one that arrives too slowly 408; every client error body has one
  shape, ``{"error": str, "detail": list}``, and the OpenAPI document says so.
- :func:`shared.compat.install_header_timeout`: a connection that dribbles its request head is
  closed (it patches uvicorn, so it lives with the other patches).
- :class:`ClientErrorLogFilter`: a client's mistake is one WARNING line with the reason, with
  no traceback and no input text.
"""

from __future__ import annotations

__all__ = ["ClientErrorLogFilter", "RequestGuardMiddleware", "UnprocessableEntityMiddleware", "install_client_error_log",
           "patch_openapi"]

import asyncio
import json
import logging
import re

from shared.api_keys import SECURITY_SCHEMES
from shared.client_errors import error_body, respond_client_error

logger = logging.getLogger(__name__)

# A validation error located in the request's input ("loc" starting with an argument name),
# as opposed to malformed JSON (loc []) or a result that failed validation (a server fault).
_INPUT_VALIDATION = re.compile(rb'^\{"error":\s*"\d+ validation errors? for Input",\s*"detail":\s*\[\{[^\]]*?"loc":\s*\["\w+"')

JSON_MEDIA_TYPES = ("application/json",)
# Where BentoML serves the OpenAPI document, which the middleware completes with the client errors.
OPENAPI_PATH = "/docs.json"

ERROR_SCHEMA = {
    "title": "ClientError",
    "type": "object",
    "description": "A client error: what was wrong, and per-field details where there are any.",
    "properties": {
        "error": {"type": "string", "description": "what was wrong with the request"},
        "detail": {"type": "array", "items": {"type": "object"},
                   "description": "validation details (loc, msg, type); empty for other errors"},
    },
    "required": ["error", "detail"],
}
VALIDATION_ERROR_SCHEMA = {
    "title": "ValidationErrorResponse",
    "type": "object",
    "description": "The request was JSON but broke the schema; each detail names the field.",
    "properties": {
        "error": {"type": "string"},
        "detail": {"type": "array", "items": {
            "type": "object",
            "properties": {"loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                           "msg": {"type": "string"}, "type": {"type": "string"}},
            "required": ["loc", "msg", "type"]}},
    },
    "required": ["error", "detail"],
}
_CLIENT_ERRORS = {
    "400": "Malformed request (the body is not valid JSON)",
    "408": "The request body did not arrive within the read timeout",
    "413": "The request body is over the size limit",
    "415": "The body is not application/json",
}


class UnprocessableEntityMiddleware:
    """Answer request-validation failures with 422 Unprocessable Entity instead of 400.

    BentoML reports a pydantic validation failure as 400 with ``{"error": "N validation
    error(s) ...", "detail": [...]}``. When the failure is located in the request's fields,
    the request was well-formed JSON that broke the schema, which is what 422 means (and what
    FastAPI clients expect). Body and detail are kept; malformed JSON stays 400 and other
    responses pass through untouched.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: list[dict] = []

        async def send_wrapper(message: dict) -> None:
            if message["type"] == "http.response.start" and message["status"] == 400:
                held.append(message)  # decide once the body's start is seen
                return
            if held and message["type"] == "http.response.body":
                start = held.pop()
                if _INPUT_VALIDATION.match(message.get("body", b"")[:500]):
                    start = {**start, "status": 422}
                await send(start)
            await send(message)

        await self.app(scope, receive, send_wrapper)


def _media_type(scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return value.decode("latin-1").split(";")[0].strip().lower()
    return None


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class RequestGuardMiddleware:
    """Media type, size and read-time limits of API requests, and one shape for client errors.

    Args:
        app: the ASGI app.
        api_routes (`frozenset[str]`): the paths of the service's APIs (``/predict``).
        max_body_bytes (`int`): larger bodies get 413, by Content-Length before reading, or as
            soon as a chunked body passes the limit.
        body_read_timeout_s (`float`): a body not complete this long after the request started
            gets 408 and the connection is closed.
    """

    def __init__(self, app, api_routes: frozenset[str], max_body_bytes: int, body_read_timeout_s: float,
                 secured: bool = False) -> None:
        self.app = app
        self.api_routes = api_routes
        self.secured = secured
        self.max_body_bytes = max_body_bytes
        self.body_read_timeout_s = body_read_timeout_s

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path == OPENAPI_PATH and scope.get("method") == "GET":
            await self.app(scope, receive, _OpenAPIPatch(send, self.api_routes, self.secured))
            return
        if path not in self.api_routes or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        media_type = _media_type(scope)
        if media_type is not None and media_type not in JSON_MEDIA_TYPES and not media_type.endswith("+json"):
            await self._refuse(scope, send, 415, f"unsupported media type {media_type!r}: send application/json")
            return
        length = _content_length(scope)
        if length is not None and length > self.max_body_bytes:
            await self._refuse(scope, send, 413, f"body of {length} bytes is over the limit of {self.max_body_bytes}",
                               close=True)
            return
        body = await self._read_body(scope, receive, send)
        if body is None:
            return
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, _ClientErrorShape(send))

    async def _read_body(self, scope, receive, send) -> bytes | None:
        """The whole body within the size and time limits; None once a refusal has been sent."""
        deadline = asyncio.get_running_loop().time() + self.body_read_timeout_s
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                # A deadline on the awaiting task itself: wait_for would start a task per receive.
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                await self._refuse(scope, send, 408, f"request body not received within "
                                                     f"{self.body_read_timeout_s:g}s ({size} bytes arrived)", close=True)
                return None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._refuse(scope, send, 413, f"body over the limit of {self.max_body_bytes} bytes", close=True)
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    @staticmethod
    async def _refuse(scope, send, status: int, reason: str, close: bool = False) -> None:
        logger.warning('client error status=%d method=%s path=%s reason="%s"', status, scope.get("method"),
                       scope.get("path"), reason)
        await respond_client_error(send, status, reason, close)


class _ClientErrorShape:
    """Rewrites BentoML's client-error bodies to ``{"error": str, "detail": list}``: a 4xx from a
    BentoML exception comes as a one-element list (``[{"error": ...}]``), a validation error
    without ``detail`` as an object without it."""

    def __init__(self, send) -> None:
        self.send = send
        self.start: dict | None = None

    async def __call__(self, message: dict) -> None:
        if message["type"] == "http.response.start" and 400 <= message["status"] < 500:
            self.start = message
            return
        if self.start is not None and message["type"] == "http.response.body":
            start, self.start = self.start, None
            body = message.get("body", b"")
            if not message.get("more_body", False):
                body = _normalised(body)
                headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
                headers.append((b"content-length", str(len(body)).encode()))
                start = {**start, "headers": headers}
                message = {**message, "body": body}
            await self.send(start)
        await self.send(message)


def _normalised(body: bytes) -> bytes:
    try:
        payload = json.loads(body)
    except ValueError:
        return error_body(body.decode("utf-8", "replace")[:500] or "client error")
    if isinstance(payload, list) and len(payload) == 1 and isinstance(payload[0], dict):
        payload = payload[0]
    if not isinstance(payload, dict) or "error" not in payload:
        return error_body("client error", payload if isinstance(payload, list) else [])
    detail = payload.get("detail")
    return error_body(str(payload["error"]), detail if isinstance(detail, list) else [])


class _OpenAPIPatch:
    """Adds to the OpenAPI document what BentoML leaves out: the 422 response with its body, and
    the real shape of the 400, 408, 413 and 415 bodies (``ClientError``)."""

    def __init__(self, send, api_routes: frozenset[str], secured: bool = False) -> None:
        self.send = send
        self.api_routes = api_routes
        self.secured = secured
        self.start: dict | None = None
        self.chunks: list[bytes] = []

    async def __call__(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            if message["status"] != 200:
                await self.send(message)
                return
            self.start = message
            return
        if self.start is None:
            await self.send(message)
            return
        self.chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body = patch_openapi(b"".join(self.chunks), self.api_routes, self.secured)
        headers = [(k, v) for k, v in self.start.get("headers", []) if k != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await self.send({**self.start, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})


def patch_openapi(document: bytes, api_routes: frozenset[str], secured: bool = False) -> bytes:
    """The OpenAPI document with the client-error responses of every API route declared, and with
    API keys on (*secured*), the security schemes, each route's requirement and its 401."""
    spec = json.loads(document)
    components = spec.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["ClientError"] = ERROR_SCHEMA
    schemas["ValidationErrorResponse"] = VALIDATION_ERROR_SCHEMA
    errors = dict(_CLIENT_ERRORS)
    if secured:
        components["securitySchemes"] = SECURITY_SCHEMES
        errors["401"] = "Missing or invalid API key"
    for path, item in spec.get("paths", {}).items():
        if path not in api_routes or "post" not in item:
            continue
        if secured:
            item["post"]["security"] = [{name: []} for name in SECURITY_SCHEMES]
        responses = item["post"].setdefault("responses", {})
        for status, description in errors.items():
            responses[status] = {"description": description, "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ClientError"}}}}
        responses["422"] = {"description": "The body is JSON but breaks the schema", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ValidationErrorResponse"}}}}
    return json.dumps(spec).encode()


class ClientErrorLogFilter(logging.Filter):
    """Turns BentoML's ERROR-with-traceback for a rejected request into one WARNING line.

    BentoML logs every request whose input fails validation as ``Exception on /predict``, with
    a traceback that quotes the input. A client's mistake is not a server error: the line keeps
    the path, the status and the reason (pydantic's messages without the input), nothing else.
    Server errors (5xx) keep their traceback. ``log_inputs`` leaves every record as it is.
    """

    def __init__(self, log_inputs: bool = False) -> None:
        super().__init__()
        self.log_inputs = log_inputs

    def filter(self, record: logging.LogRecord) -> bool:
        if self.log_inputs or not record.exc_info or record.exc_info[1] is None:
            return True
        exc = record.exc_info[1]
        status, reason = _client_error(exc)
        if status is None:
            return True
        path = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        record.msg = 'client error status=%d path=%s reason="%s"'
        record.args = (status, path, reason)
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def _client_error(exc: BaseException) -> tuple[int | None, str]:
    from bentoml.exceptions import BentoMLException
    from pydantic import ValidationError

    from shared.kafka.messages import validation_summary

    if isinstance(exc, ValidationError):
        # Located in the input's fields: the response is 422 (UnprocessableEntityMiddleware); else malformed JSON.
        located = all(error["loc"] for error in exc.errors(include_input=False, include_url=False))
        return (422 if located else 400), validation_summary(exc)
    if isinstance(exc, BentoMLException) and 400 <= int(exc.error_code) < 500:
        return int(exc.error_code), type(exc).__name__
    if isinstance(exc, (json.JSONDecodeError, UnicodeDecodeError)):
        return 400, type(exc).__name__
    return None, ""


def install_client_error_log(log_inputs: bool = False) -> None:
    """Attach :class:`ClientErrorLogFilter` to the logger BentoML reports request errors on."""
    from shared.compat import BENTOML_REQUEST_ERROR_LOGGER

    target = logging.getLogger(BENTOML_REQUEST_ERROR_LOGGER)
    if not any(isinstance(f, ClientErrorLogFilter) for f in target.filters):
        target.addFilter(ClientErrorLogFilter(log_inputs))
