"""Expense category of a purchase-card transaction (merchant, amount, directorate): category, score and top 3.

Run it with ``slm serve transactions`` (or ``bentoml serve services.transactions.service:Transactions``).
"""

from typing import Annotated

import bentoml
from bentoml.exceptions import ServiceUnavailable
from pydantic import Field

from shared.rest_batching import Overloaded
from shared.bento import JSON_OUTPUT, SERVICE_OPTIONS, serving_settings
from shared.schemas import ClassificationResultV1, TaskRequestV1
from shared.telemetry import shutdown_telemetry

TASK = "transactions"
SETTINGS = serving_settings()  # read once per process, before the API below is declared with them
EXAMPLE = [{"id": "tx-1", "text": "shell kings 587", "fields": {"amount": 35.0, "currency": "GBP", "directorate": "Adult & Communities"}}]

# Required (no default): a body without "items" must get 422, not a prediction of the example.
Items = Annotated[list[TaskRequestV1], Field(min_length=1, max_length=SETTINGS.service.max_batch_size,
                                             json_schema_extra={"example": EXAMPLE})]


@bentoml.service(name=f"slm-{TASK}", **SERVICE_OPTIONS)
class Transactions:
    """REST ``POST /predict`` (one item or a batch) and the ``transactions.requests`` consumer."""

    def __init__(self) -> None:
        from shared.serving import ServedTask

        # The model, REST micro-batching and, with SLM_KAFKA_BOOTSTRAP set, the consumer loop.
        self.served = ServedTask(TASK, SETTINGS)

    @bentoml.api(route="/predict")
    async def predict(self, items: Items) -> Annotated[list[ClassificationResultV1], JSON_OUTPUT]:
        """Process each item; results come back in request order. Concurrent requests share model runs."""
        try:
            return await self.served.submit(items)
        except Overloaded as exc:
            raise ServiceUnavailable(str(exc)) from None

    def __is_ready__(self) -> bool:
        """``/readyz``: the model is loaded (a Kafka outage leaves REST ready unless SLM_KAFKA_UNREADY_AFTER_S > 0)."""
        return self.served.is_ready()

    def __is_alive__(self) -> bool:
        """``/livez`` and ``/healthz``: false only when a restart helps (the consumer loop fenced or stuck)."""
        return self.served.is_alive()

    @bentoml.on_shutdown
    def shutdown(self) -> None:
        """SIGTERM: stop polling, finish and commit the batch in hand, close the Kafka clients, flush spans."""
        self.served.close()
        shutdown_telemetry()
