"""Named entities (people, organisations, places, other) with character offsets into the input.

Run it with ``slm serve entities`` (or ``bentoml serve services.entities.service:Entities``).
"""

import bentoml

from shared.bento import SERVICE_OPTIONS, finish_service, prepare_process, task_service_base
from shared.schemas import EntitiesResultV1

TASK = "entities"
EXAMPLE = [{"id": "doc-1", "text": "This Loan Agreement is made between Silicon Valley Bank and John Smith of Santa Clara, California."}]

prepare_process(TASK)


@bentoml.service(name=f"slm-{TASK}", **SERVICE_OPTIONS)
class Entities(task_service_base(TASK, EntitiesResultV1, EXAMPLE)):
    """REST ``POST /predict`` (one item or a batch) and the ``entities.requests`` consumer."""


finish_service(Entities)
