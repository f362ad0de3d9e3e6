"""Sentiment of financial news: bearish, bullish or neutral.

Run it with ``slm serve sentiment`` (or ``bentoml serve services.sentiment.service:Sentiment``).
"""

import bentoml

from shared.bento import SERVICE_OPTIONS, finish_service, prepare_process, task_service_base
from shared.schemas import ClassificationResultV1

TASK = "sentiment"
EXAMPLE = [{"id": "news-1", "text": "$AAPL beats estimates and raises guidance"}]

prepare_process(TASK)


@bentoml.service(name=f"slm-{TASK}", **SERVICE_OPTIONS)
class Sentiment(task_service_base(TASK, ClassificationResultV1, EXAMPLE)):
    """REST ``POST /predict`` (one item or a batch) and the ``sentiment.requests`` consumer."""


finish_service(Sentiment)
