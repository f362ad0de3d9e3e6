"""The one body of a client error, ``{"error": str, "detail": list}``, and the ASGI response that carries it.

Every middleware that refuses a request itself (:mod:`shared.http`'s limits, :mod:`shared.api_keys`'s
401, :mod:`shared.shadow_rest`'s 503) answers through :func:`respond_client_error`, so a client
reads one shape whoever refused it.
"""

from __future__ import annotations

import json

__all__ = ["error_body", "respond_client_error"]


def error_body(error: str, detail: list | None = None) -> bytes:
    """``{"error": error, "detail": detail}`` as JSON bytes (``detail`` empty when not given)."""
    return json.dumps({"error": error, "detail": detail or []}).encode()


async def respond_client_error(send, status: int, error: str, close: bool = False,
                               headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """Send a client error with the one body shape, ``{"error": error, "detail": []}``."""
    body = error_body(error)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               *(headers or [])]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
