"""The one BentoML service shape all four tasks share.

Each ``services/<task>/service.py`` declares its class with ``@bentoml.service`` on top
of :func:`task_service_base` and nothing else: the REST API, readiness, shutdown and the
Kafka loop live here, so the four services cannot drift apart.

No ``from __future__ import annotations`` in this module: BentoML reads the API's input
and output types from the annotations, which must be real types, not strings.
"""

import logging
from typing import Annotated

import bentoml
from bentoml.exceptions import ServiceUnavailable
from bentoml.validators import ContentType
from pydantic import BaseModel, Field

from shared.batching import MicroBatcher, Overloaded
from shared.http import (RequestGuardMiddleware, UnprocessableEntityMiddleware, install_client_error_log,
                         install_header_timeout)
from shared.schemas import TaskRequestV1
from shared.settings import KafkaSettings, ServiceSettings
from shared.telemetry import setup_logging, setup_telemetry, share_with_bentoml, shutdown_telemetry

__all__ = ["SERVICE_OPTIONS", "SETTINGS", "finish_service", "prepare_process", "task_service_base"]

SETTINGS = ServiceSettings()
# Stated, not inferred: for a list output BentoML 1.4 otherwise finds the media type by building
# the output's JSON schema again for every response (40% of the event loop's time at
# concurrency 32 in a py-spy profile).
JSON_OUTPUT = ContentType("application/json")
# One worker per pod or Ray replica: scale out with replicas, not processes, so each
# consumer thread holds its own share of the topic's partitions.
SERVICE_OPTIONS = {"traffic": {"timeout": 30}, "workers": 1}


def prepare_process(task: str) -> None:
    """Logging and telemetry for this process; BentoML's span per REST request goes to our exporter.

    Also what a reverse proxy would do: a slow request head closes the connection, and a
    client's 4xx is logged as one line without its input.
    """
    setup_logging()
    if not install_header_timeout(SETTINGS.header_read_timeout_s):
        logging.getLogger(__name__).warning("httptools is missing: slow request heads are not timed out")
    install_client_error_log(SETTINGS.log_inputs)
    setup_telemetry(f"slm-{task}")
    share_with_bentoml()


def task_service_base(task: str, result_model: type[BaseModel], example: list[dict]) -> type:
    """A class with the task's REST API and lifecycle, to be decorated with ``@bentoml.service``.

    Args:
        task (`str`): task name (model folder, topics, consumer group).
        result_model (`type[BaseModel]`): the result schema returned and published.
        example (`list[dict]`): sample request items shown in the OpenAPI document.
    """
    # Required (no default): a body without "items" must get 422, not a prediction of the example.
    items_type = Annotated[list[TaskRequestV1], Field(min_length=1, max_length=SETTINGS.max_batch_size,
                                                      json_schema_extra={"example": example})]

    class TaskService:
        def __init__(self) -> None:
            from shared.service_runtime import TaskRuntime

            self.runtime = TaskRuntime(task, SETTINGS, KafkaSettings())
            # Our micro-batcher, not BentoML's adaptive batching: see shared/batching.py.
            self.batcher = MicroBatcher(self.runtime.predict, SETTINGS.max_batch_size,
                                        max_queue_ms=SETTINGS.batch_max_latency_ms, max_wait_ms=SETTINGS.batch_wait_ms)

        @bentoml.api(route="/predict")
        async def predict(self, items: items_type) -> Annotated[list[result_model], JSON_OUTPUT]:
            """Process each item; results come back in request order. Concurrent requests share model runs."""
            try:
                return await self.batcher.submit(items)
            except Overloaded as exc:
                raise ServiceUnavailable(str(exc)) from None

        def __is_ready__(self) -> bool:
            return self.runtime.is_ready()

        @bentoml.on_shutdown
        def shutdown(self) -> None:
            """SIGTERM: stop polling, finish and commit the batch in hand, close Kafka clients."""
            self.runtime.close()
            self.batcher.close()
            shutdown_telemetry()

    return TaskService


def finish_service(service) -> None:
    """What every service adds after ``@bentoml.service``: 422 for invalid input; 415, 413 and
    408 for a body that is not JSON, too large or too slow; one shape for client-error bodies."""
    service.add_asgi_middleware(UnprocessableEntityMiddleware)
    service.add_asgi_middleware(RequestGuardMiddleware, api_routes=frozenset(api.route for api in service.apis.values()),
                                max_body_bytes=SETTINGS.max_body_bytes,
                                body_read_timeout_s=SETTINGS.body_read_timeout_s)
