"""ASGI middleware shared by the task services."""

from __future__ import annotations

__all__ = ["UnprocessableEntityMiddleware"]

_VALIDATION_MARKER = b'validation error'


class UnprocessableEntityMiddleware:
    """Answer request-validation failures with 422 Unprocessable Entity instead of 400.

    BentoML reports a pydantic validation failure as 400 with ``{"error": "N validation
    error(s) ...", "detail": [...]}``. The request was well-formed JSON but broke the
    schema, which is what 422 means (and what FastAPI clients expect). Body and detail are
    kept; other responses pass through untouched.
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
                if _VALIDATION_MARKER in message.get("body", b"")[:200]:
                    start = {**start, "status": 422}
                await send(start)
            await send(message)

        await self.app(scope, receive, send_wrapper)
