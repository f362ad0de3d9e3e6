"""Every use of a private API of BentoML, Ray Serve or uvicorn, in one place.

Written for bentoml 1.4.40, ray 2.60.0 and uvicorn 0.54.0 (:data:`WRITTEN_FOR`, the pins of
requirements.lock). ``tests/shared/test_compat.py`` fails when the lock pins another version:
re-read each function here against the new release, then update :data:`WRITTEN_FOR`.

- :func:`share_tracer_provider`: BentoML's per-request server spans use our tracer provider
  (``bentoml._internal.configuration.containers.BentoMLContainer``).
- :data:`BENTOML_REQUEST_ERROR_LOGGER`: the logger BentoML reports a failed request on.
- :func:`json_apis`, :func:`api_function` and :func:`bentoml_error_answer`: what the lean REST path
  (:mod:`shared.rest_io`) needs to serve an API method as BentoML would: its input and output models
  (``_bentoml_sdk.method.APIMethod``), the service instance (``_bentoml_sdk.get_current_service``)
  and how ``_bentoml_impl.server.app.ServiceAppFactory.api_endpoint_wrapper`` answers an exception.
- :func:`install_header_timeout`: uvicorn closes a connection whose request head dribbles in
  (``uvicorn.config.HTTP_PROTOCOLS`` and ``HttpToolsProtocol``'s callbacks and its ``loop``,
  ``transport``, ``client`` and ``pipeline`` attributes). Under Ray Serve the proxy's own uvicorn,
  in another process, serves the requests: there the timeout does not apply.
- :func:`keep_replica_grpc_local`: a Serve replica's gRPC server on 127.0.0.1
  (``ray.serve._private.replica``).
- :func:`use_local_ray_env` and :func:`local_ray_init_options`: a local Ray cluster whose every
  listener stays on 127.0.0.1 (``ray.init(_node_ip_address=...)`` and Ray's own environment knobs).
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["BENTOML_REQUEST_ERROR_LOGGER", "RAY_ENV_DEFAULTS", "WRITTEN_FOR", "JsonApi", "api_function",
           "bentoml_error_answer", "install_header_timeout", "json_apis", "keep_replica_grpc_local",
           "local_ray_init_options", "share_tracer_provider", "use_local_ray_env"]

logger = logging.getLogger(__name__)

#: The releases this module was checked against; the test compares them with requirements.lock.
WRITTEN_FOR = {"bentoml": "1.4.40", "ray": "2.60.0", "uvicorn": "0.54.0"}

# --- BentoML ---------------------------------------------------------------------------------

#: BentoML logs every request whose handling raised (a client's invalid input too) here.
BENTOML_REQUEST_ERROR_LOGGER = "bentoml._internal.server.http_app"


def share_tracer_provider(provider) -> None:
    """Let BentoML's per-request server spans use ``provider`` (ours).

    BentoML builds a provider of its own from its config file (no exporter, sample rate 0
    by default) for the ASGI middleware that opens every request's span. Handing it ours
    gives one server span per request, exported as the OTEL_* variables say, with our spans
    as its children. Must run before the service's app is built (``Service.to_asgi``).
    """
    from bentoml._internal.configuration.containers import BentoMLContainer

    BentoMLContainer.tracer_provider.set(provider)


# What BentoML answers when an API method raises (``api_endpoint_wrapper``): a 5xx never tells
# the client why, the reason is in the server's log.
UNEXPECTED_ERROR = "An unexpected error has occurred, please check the server log."


@dataclass(frozen=True)
class JsonApi:
    """One API method as the lean REST path serves it.

    Args:
        name (`str`): the method's name on the service class.
        route (`str`): its path (``/predict``).
        arguments (`Callable[[bytes], dict]`): the request body to the method's keyword arguments;
            raises pydantic's ``ValidationError`` exactly where BentoML's JSON serde does (the same
            model validates the same bytes).
        answer (`Callable[[Any], bytes]`): the method's return value to the response body: the values
            BentoML writes (the output model's ``model_dump(mode="json")``), as compact JSON.
    """

    name: str
    route: str
    arguments: Callable[[bytes], dict]
    answer: Callable[[Any], bytes]


def json_apis(service) -> list[JsonApi]:
    """The API methods of ``service`` (a ``bentoml.Service``) that take named JSON arguments and
    answer JSON: not batchable, not streaming, no context argument, an ``async def``, a list or
    value output. The others are left to BentoML."""
    import orjson
    from _bentoml_sdk.io_models import ARGS, KWARGS, IORootModel

    apis = []
    for name, method in service.apis.items():
        given, output = method.input_spec, method.output_spec
        fields = tuple(given.model_fields)
        if (method.batchable or method.is_stream or method.ctx_param is not None
                or not inspect.iscoroutinefunction(method.func) or getattr(given, "__root_input__", False)
                or given.multipart_fields or ARGS in fields or KWARGS in fields
                or not issubclass(output, IORootModel) or output.mime_type() != "application/json"):
            continue

        def arguments(body: bytes, given=given, fields=fields) -> dict:
            # As JSONSerde.deserialize_model: an empty body is an empty object.
            data = given.model_validate_json(body or b"{}")
            return {field: getattr(data, field) for field in fields}

        def answer(value, output=output) -> bytes:
            # IORootModel.model_dump_json is json.dumps of this dump: the same values, without the
            # stdlib encoder's cost and blanks.
            return orjson.dumps(output(value).model_dump(mode="json"))

        apis.append(JsonApi(name, method.route, arguments, answer))
    return apis


def api_function(instance, name: str) -> Callable:
    """The API method ``name`` of a service instance (``bentoml.get_current_service()``), called
    in this process: BentoML's ``.local`` (the bound attribute itself goes through the service's
    HTTP client)."""
    return getattr(instance, name).local


def bentoml_error_answer(exc: BaseException) -> tuple[int, Any]:
    """The status and JSON body BentoML answers when an API method raises ``exc`` (a 4xx
    ``BentoMLException`` as a one-element list, which :mod:`shared.http` reshapes)."""
    from bentoml.exceptions import BentoMLException

    if not isinstance(exc, BentoMLException):
        return 500, {"error": UNEXPECTED_ERROR}
    status = int(exc.error_code)
    if status in (401, 403):
        return status, {"error": "Authorization error"}
    if status >= 500:
        return status, {"error": UNEXPECTED_ERROR}
    return status, [{"error": str(exc)}]


# --- uvicorn (BentoML's HTTP server) -----------------------------------------------------------


def install_header_timeout(seconds: float) -> bool:
    """Make uvicorn close a connection whose request head is not complete ``seconds`` after the
    connection opened or its previous response ended (slow-header clients).

    uvicorn has no header-read timeout and BentoML builds its ``uvicorn.Config`` itself, so the
    protocol class its ``"auto"`` choice resolves to (httptools) is replaced by a subclass with
    that timer. Must run before the server loads its config (before the service's app is built).
    Returns False where httptools is missing (h11 is left as it is).
    """
    try:
        from uvicorn.config import HTTP_PROTOCOLS
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return False

    class HeaderTimeoutProtocol(HttpToolsProtocol):
        header_timeout_s = seconds

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm_header_timeout()

        def on_headers_complete(self) -> None:
            self._disarm_header_timeout()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            # A pipelined request whose head already arrived starts inside super(): no timer for it.
            idle = not self.pipeline
            super().on_response_complete()
            if idle and not self.transport.is_closing():
                self._arm_header_timeout()

        def connection_lost(self, exc) -> None:
            self._disarm_header_timeout()
            super().connection_lost(exc)

        def _arm_header_timeout(self) -> None:
            self._disarm_header_timeout()
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timed_out)

        def _disarm_header_timeout(self) -> None:
            timer = getattr(self, "_header_timer", None)
            if timer is not None:
                timer.cancel()
                self._header_timer = None

        def _header_timed_out(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                logger.warning('client error status=408 reason="request head not received within %gs" client=%s',
                               self.header_timeout_s, self.client)
                self.transport.close()

    HTTP_PROTOCOLS["auto"] = HTTP_PROTOCOLS["httptools"] = f"{__name__}:_protocol_{_key(seconds)}"
    globals()[f"_protocol_{_key(seconds)}"] = HeaderTimeoutProtocol
    return True



def _key(seconds: float) -> str:
    return str(seconds).replace(".", "_").replace("-", "_")


# --- Ray -------------------------------------------------------------------------------------

# Set before a local cluster starts, so its processes inherit them:
# - no usage report leaves the machine;
# - the node address stays 127.0.0.1: Ray swaps a loopback ``_node_ip_address`` for the
#   machine's routable address unless its multi-node mode is off, and only with a loopback
#   node address do its gRPC servers and agents listen on 127.0.0.1 rather than everywhere;
# - a proxy that starts slowly on a busy 2-core machine is not killed for it.
RAY_ENV_DEFAULTS = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "60",
}


def use_local_ray_env() -> None:
    """Set :data:`RAY_ENV_DEFAULTS` (where unset). Call it before Ray is first imported in the
    process: Ray reads them at import, and a cluster started after a plain ``import ray``
    listens on every interface."""
    for name, value in RAY_ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)


def local_ray_init_options() -> dict:
    """``ray.init`` options of a local cluster on 127.0.0.1 (with :func:`use_local_ray_env`)."""
    return {"address": "local", "_node_ip_address": "127.0.0.1"}


def keep_replica_grpc_local() -> None:
    """Bind this replica's inter-deployment gRPC server to 127.0.0.1 when the Ray node is local.

    Ray Serve 2.60 replicas open that server on every interface (``[::]:0``, hard-coded in
    ``ray.serve._private.replica``), even in a cluster whose every other listener is on
    127.0.0.1. Callers reach a replica at its node address, so on a loopback node loopback is
    enough; on a real cluster (KubeRay) the address is left alone. Call it in the replica's
    constructor, which runs before the server starts.
    """
    import ray
    from ray.serve._private import replica

    if ray.util.get_node_ip_address() != "127.0.0.1" or getattr(replica.add_port_to_grpc_server, "_slm_local", False):
        return
    original = replica.add_port_to_grpc_server

    def add_local_port(server, address: str):
        return original(server, "127.0.0.1:0" if address == "[::]:0" else address)

    add_local_port._slm_local = True
    replica.add_port_to_grpc_server = add_local_port
