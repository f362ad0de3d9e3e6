"""ASGI middleware shared by the task services."""

from __future__ import annotations

__all__ = ["UnprocessableEntityMiddleware"]

import re

# A validation error located in the request's input ("loc" starting with an argument name),
# as opposed to malformed JSON (loc []) or a result that failed validation (a server fault).
_INPUT_VALIDATION = re.compile(rb'^\{"error":\s*"\d+ validation errors? for Input",\s*"detail":\s*\[\{[^\]]*?"loc":\s*\["\w+"')


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
