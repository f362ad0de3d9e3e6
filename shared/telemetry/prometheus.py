"""The services' OpenTelemetry metrics as Prometheus text, served on ``/metrics``.

A Prometheus reader joins the meter provider beside OTLP, so both read the same instruments.
Its registry is this module's own, not ``prometheus_client``'s global one: BentoML renders that
one (in multiprocess mode, from files) on its ``/metrics``, and :class:`MetricsMiddleware`
appends this registry's text to BentoML's, or serves it alone where BentoML's fails (behind
the Ray Serve ingress).
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

__all__ = ["MetricsMiddleware", "exposition", "prometheus_reader"]

_registry = CollectorRegistry(auto_describe=True)


def prometheus_reader():
    """A metric reader whose collections this module's :func:`exposition` renders."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader

    return PrometheusMetricReader(scope_info_enabled=False, registry=_registry)


def exposition() -> bytes:
    """This process's ``slm_*`` series in the Prometheus text format (empty before set-up)."""
    return generate_latest(_registry)


class MetricsMiddleware:
    """``GET /metrics``: BentoML's metrics (when it answers 200) followed by the task's ``slm_*``."""

    def __init__(self, app, path: str = "/metrics") -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        start: dict = {}
        chunks: list[bytes] = []

        async def capture(message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        try:
            await self.app(scope, receive, capture)
        except Exception:  # noqa: BLE001 - the task's own metrics are still worth serving
            start.clear()
        theirs = b"".join(chunks) if start.get("status") == 200 else b""
        if theirs and not theirs.endswith(b"\n"):
            theirs += b"\n"
        body = theirs + exposition()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", CONTENT_TYPE_LATEST.encode()),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
