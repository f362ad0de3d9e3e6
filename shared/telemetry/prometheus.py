"""The services' OpenTelemetry metrics as Prometheus text, served on ``/metrics``.

A Prometheus reader joins the meter provider beside OTLP, so both read the same instruments.
Its registry is this module's own, not ``prometheus_client``'s global one: BentoML renders that
one (in multiprocess mode, from files) on its ``/metrics`` where its metrics are on, and
:class:`MetricsMiddleware` appends this registry's text to BentoML's, or serves it alone where
BentoML answers no 200 (the task services turn BentoML's metrics off, ``shared/bento.py``;
behind the Ray Serve ingress).

BentoML's request series counted every answer by status. Ours count what reached the model
(``slm_requests_total``, ``slm_request_latency_milliseconds``), and :class:`MetricsMiddleware`
counts the API routes' answers by status (``slm_http_responses_total``), client errors included.
"""

from __future__ import annotations

from opentelemetry import metrics
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
    """``GET /metrics``: BentoML's metrics (when it answers 200) followed by the task's ``slm_*``;
    and the count of the API routes' answers by status.

    Args:
        app: the ASGI app.
        path (`str`, defaults to `"/metrics"`): where the metrics are served.
        api_routes (`frozenset[str]`, defaults to none): the routes whose answers are counted.
        task (`str`, defaults to `""`): the ``task`` label of the count.
        meter (`metrics.Meter | None`): where the count is kept; defaults to the global provider's.
    """

    def __init__(self, app, path: str = "/metrics", api_routes: frozenset[str] = frozenset(), task: str = "",
                 meter: metrics.Meter | None = None) -> None:
        self.app = app
        self.path = path
        self.api_routes = api_routes
        self.task = task
        self.responses = (meter or metrics.get_meter("slm.services")).create_counter(
            "slm.http.responses", unit="{response}", description="Answers of the REST API by status")

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] in self.api_routes:
            await self._counted(scope, receive, send)
            return
        if scope["path"] != self.path or scope["method"] != "GET":
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

    async def _counted(self, scope, receive, send) -> None:
        route = scope["path"]

        async def counting(message) -> None:
            if message["type"] == "http.response.start":
                self.responses.add(1, {"task": self.task, "route": route, "status": str(message["status"])})
            await send(message)

        await self.app(scope, receive, counting)
