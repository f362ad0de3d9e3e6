"""Expense category of a purchase-card transaction (merchant, amount, directorate): category, score and top 3.

Run it with ``slm serve transactions`` (or ``bentoml serve services.transactions.service:Transactions``).
"""

import bentoml

from shared.bento import SERVICE_OPTIONS, finish_service, prepare_process, task_service_base
from shared.schemas import ClassificationResultV1

TASK = "transactions"
EXAMPLE = [{"id": "tx-1", "text": "shell kings 587", "fields": {"amount": 35.0, "currency": "GBP", "directorate": "Adult & Communities"}}]

prepare_process(TASK)


@bentoml.service(name=f"slm-{TASK}", **SERVICE_OPTIONS)
class Transactions(task_service_base(TASK, ClassificationResultV1, EXAMPLE)):
    """REST ``POST /predict`` (one item or a batch) and the ``transactions.requests`` consumer."""


finish_service(Transactions)
