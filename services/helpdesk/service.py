"""Queue of an IT-helpdesk ticket: queue, score and top 3.

Run it with ``slm serve helpdesk`` (or ``bentoml serve services.helpdesk.service:Helpdesk``).
"""

import bentoml

from shared.bento import SERVICE_OPTIONS, finish_service, prepare_process, task_service_base
from shared.schemas import ClassificationResultV1

TASK = "helpdesk"
EXAMPLE = [{"id": "ticket-1", "text": "cannot access shared drive after password reset please grant access"}]

prepare_process(TASK)


@bentoml.service(name=f"slm-{TASK}", **SERVICE_OPTIONS)
class Helpdesk(task_service_base(TASK, ClassificationResultV1, EXAMPLE)):
    """REST ``POST /predict`` (one item or a batch) and the ``helpdesk.requests`` consumer."""


finish_service(Helpdesk)
