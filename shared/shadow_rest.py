"""REST on a shadow process (``SLM_KAFKA_SHADOW=true``): ``POST /predict`` is refused with 503.

A shadow is a second model version that answers the task's Kafka requests into
``<task>.shadow.results`` for comparison (:mod:`shared.kafka.shadow`, ``slm compare``); its answers
must never reach a caller. Its API routes answer ``503 Service Unavailable`` with the reason, in the
services' error shape (``{"error": ..., "detail": []}``); everything else is served as usual.

Why 503 and not a 4xx, or no route at all: the request is fine, this process is not the one to
answer it, which is a server-side state (as a draining or overloaded backend's 503), not a
client's mistake. The probes stay up (``/readyz`` 200, so a Deployment of shadows rolls out like
any other) and so do ``/metrics`` and the API's documentation: the process is healthy, only not a
REST backend. On Kubernetes the chart's shadow Deployment is not selected by the task's Service, so
no cluster traffic reaches it; the 503 explains itself to whoever calls a shadow pod directly
(``kubectl port-forward``, ``slm serve --shadow`` on a laptop) rather than a 404 that reads like
a wrong URL.
"""

from __future__ import annotations

import logging

from shared.client_errors import respond_client_error

__all__ = ["ShadowRestMiddleware", "shadow_refusal"]

logger = logging.getLogger(__name__)


def shadow_refusal(task: str) -> str:
    """The reason a shadow gives for refusing a REST request."""
    return (f"this {task} service is a shadow (SLM_KAFKA_SHADOW=true): it answers Kafka requests into "
            f"{task}.shadow.results for comparison only and serves no REST predictions; call the primary")


class ShadowRestMiddleware:
    """Refuse the service's API routes with 503 and :func:`shadow_refusal`; pass everything else.

    Args:
        app: the ASGI app.
        api_routes (`frozenset[str]`): the paths of the service's APIs (``/predict``).
        task (`str`): the task, named in the reason.
    """

    def __init__(self, app, api_routes: frozenset[str], task: str) -> None:
        self.app = app
        self.api_routes = api_routes
        self.reason = shadow_refusal(task)
        self._logged = False

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("path", "") not in self.api_routes:
            await self.app(scope, receive, send)
            return
        if not self._logged:  # once: a client that keeps calling must not flood the log
            self._logged = True
            logger.warning('REST request refused by a shadow path=%s (further refusals are not logged)',
                           scope.get("path", ""))
        await respond_client_error(send, 503, self.reason)
