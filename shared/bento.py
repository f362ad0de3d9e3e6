"""What the four BentoML task services share besides their API: options and process start-up.

Each ``services/<task>/service.py`` declares its own API (``POST /predict``, readiness, shutdown)
with the process's settings (:func:`serving_settings`) and passes :data:`SERVICE_OPTIONS` to
``@bentoml.service``. Those options make the service a
:class:`TaskBentoService`, which adds the HTTP guards to the service and sets up the process
(logging, telemetry, the request-head timeout) when the server builds the app, not when the
module is imported: importing a service module changes nothing outside it.
"""

import logging

import bentoml
from bentoml.validators import ContentType

from shared.api_keys import ApiKeyMiddleware, ApiKeys
from shared.compat import install_header_timeout, json_apis, share_tracer_provider
from shared.http import RequestGuardMiddleware, UnprocessableEntityMiddleware, install_client_error_log
from shared.rest_io import LeanApiMiddleware, untraced_routes
from shared.settings import ServingSettings, warn_unknown_settings
from shared.shadow_rest import ShadowRestMiddleware
from shared.telemetry import setup_logging, setup_telemetry
from shared.telemetry.prometheus import MetricsMiddleware

__all__ = ["JSON_OUTPUT", "SERVICE_OPTIONS", "TaskBentoService", "serving_settings", "use_settings"]

logger = logging.getLogger(__name__)

_settings: ServingSettings | None = None


def use_settings(settings: ServingSettings) -> None:
    """Serve this process with ``settings`` instead of reading them from its environment: what a Ray
    replica does with the settings bound to it. Call it before the service module is imported."""
    global _settings
    _settings = settings


def serving_settings() -> ServingSettings:
    """This process's settings: those :func:`use_settings` gave, else read from the environment once
    (``bentoml serve``, a process of its own), with a warning for each unknown ``SLM_*`` name."""
    global _settings
    if _settings is None:
        warn_unknown_settings()
        _settings = ServingSettings.from_env()
    return _settings


# Stated, not inferred: for a list output BentoML 1.4 otherwise finds the media type by building
# the output's JSON schema again for every response (40% of the event loop's time at
# concurrency 32 in a py-spy profile).
JSON_OUTPUT = ContentType("application/json")


class TaskBentoService(bentoml.Service):
    """A BentoML service with the task services' HTTP guards and process set-up.

    422 for invalid input; 415, 413 and 408 for a body that is not JSON, too large or too slow;
    one shape for client-error bodies (:mod:`shared.http`); with ``SLM_API_KEYS_FILE``, 401
    without a valid API key (:mod:`shared.api_keys`).
    """

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        settings = serving_settings().service
        secured = settings.api_keys_file is not None
        api_routes, task = frozenset(api.route for api in self.apis.values()), self.name.removeprefix("slm-")
        if secured:
            # First in the list, outermost in the app: a request without a key is refused before
            # its body is read.
            self.add_asgi_middleware(ApiKeyMiddleware, keys=ApiKeys(settings.api_keys_file),
                                     open_paths=frozenset(settings.open_paths))
        if serving_settings().kafka.shadow:
            # A shadow's answers go to <task>.shadow.results only: its API refuses with 503 (shared/shadow_rest.py).
            self.add_asgi_middleware(ShadowRestMiddleware, api_routes=api_routes, task=task)
        self.add_asgi_middleware(MetricsMiddleware, api_routes=api_routes, task=task)
        self.add_asgi_middleware(UnprocessableEntityMiddleware)
        self.add_asgi_middleware(RequestGuardMiddleware, api_routes=api_routes,
                                 max_body_bytes=settings.max_body_bytes,
                                 body_read_timeout_s=settings.body_read_timeout_s, secured=secured)
        # Last, innermost: the API's answers skip BentoML's request handling and its tracing
        # middleware, and get one server span of ours (shared/rest_io.py).
        lean = json_apis(self)
        self.add_asgi_middleware(LeanApiMiddleware, apis=lean)
        self.config = {**self.config, "tracing": {**self.config.get("tracing", {}),
                                                  "excluded_urls": untraced_routes(lean)}}

    def to_asgi(self, is_main: bool = True):
        """Set up this process, then build the app (``bentoml serve``'s worker, a Ray Serve replica)."""
        prepare_process(self.name)
        return super().to_asgi(is_main)


def prepare_process(service_name: str) -> None:
    """Logging and telemetry for this process; BentoML's span per REST request goes to our exporter.

    Also what a reverse proxy would do: a slow request head closes the connection, and a
    client's 4xx is logged as one line without its input. Runs before the app is built, which
    is the last moment the tracer provider and uvicorn's protocol can still be chosen.
    """
    from opentelemetry import trace

    settings = serving_settings().service
    setup_logging()
    if not install_header_timeout(settings.header_read_timeout_s):
        logger.warning("httptools is missing: slow request heads are not timed out")
    install_client_error_log(settings.log_inputs)
    setup_telemetry(service_name)
    share_tracer_provider(trace.get_tracer_provider())


# BentoML's own per-request work that ours already does, turned off by its configuration
# (keys of bentoml 1.4's v2 schema, ``_bentoml_sdk/service/config.py``):
# - ``metrics``: its request counter, latency histogram and in-progress gauge, a middleware on
#   every request; /metrics serves ours (``slm_requests_total``, ``slm_request_latency_milliseconds``
#   by path, and ``slm_http_responses_total`` by status: shared/telemetry/prometheus.py);
# - ``logging.access``: one INFO line per request; a client error is one WARNING line
#   (shared/http.py), and nothing is logged per request at INFO.
BENTOML_OFF = {"metrics": {"enabled": False}, "logging": {"access": {"enabled": False}}}

# One worker per pod or Ray replica: scale out with replicas, not processes, so each
# consumer thread holds its own share of the topic's partitions.
SERVICE_OPTIONS = {"traffic": {"timeout": 30}, "workers": 1, "service_class": TaskBentoService, **BENTOML_OFF}
