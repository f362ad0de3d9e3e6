"""Sentiment of financial news: bearish, bullish or neutral, over REST and Kafka.

Run it with ``slm serve sentiment`` (or ``bentoml serve services.sentiment.service:Sentiment``).
"""

from __future__ import annotations

from typing import Annotated

import bentoml
from pydantic import Field

from shared.http import UnprocessableEntityMiddleware
from shared.schemas import ClassificationResultV1, TaskRequestV1
from shared.settings import KafkaSettings, ServiceSettings
from shared.telemetry import setup_logging, setup_telemetry, share_with_bentoml, shutdown_telemetry

TASK = "sentiment"
SETTINGS = ServiceSettings()
EXAMPLE = [{"id": "news-1", "text": "$AAPL beats estimates and raises guidance"}]
# Required (no default): a body without "items" must get 422, not a prediction of the example.
Items = Annotated[list[TaskRequestV1], Field(min_length=1, max_length=SETTINGS.max_batch_size,
                                             json_schema_extra={"example": EXAMPLE})]

setup_logging()
setup_telemetry(f"slm-{TASK}")
share_with_bentoml()  # BentoML's span per REST request, exported by our provider


@bentoml.service(name=f"slm-{TASK}", traffic={"timeout": 30}, workers=1)
class Sentiment:
    """REST ``POST /predict`` (one item or a batch) and the ``sentiment.requests`` consumer."""

    def __init__(self) -> None:
        from shared.service_runtime import TaskRuntime

        self.runtime = TaskRuntime(TASK, SETTINGS, KafkaSettings())

    @bentoml.api(
        route="/predict",
        batchable=True,
        max_batch_size=SETTINGS.max_batch_size,
        max_latency_ms=SETTINGS.batch_max_latency_ms,
    )
    def predict(self, items: Items) -> list[ClassificationResultV1]:
        """Classify each item; results come back in request order."""
        return self.runtime.predict(items)

    def __is_ready__(self) -> bool:
        return self.runtime.is_ready()

    @bentoml.on_shutdown
    def shutdown(self) -> None:
        """SIGTERM: stop polling, finish and commit the batch in hand, close Kafka clients."""
        self.runtime.close()
        shutdown_telemetry()


Sentiment.add_asgi_middleware(UnprocessableEntityMiddleware)
