"""What the consumer loop does when a request cannot be processed or a record cannot be produced.

Callbacks in the manner of quix-streams' ``error_callbacks``: each gets the exception, the record
and the loop's logger, and returns True to dead-letter the record and go on, or False to raise,
so that the batch is not committed and is consumed again from the last commit (at least once).
Pass others to :class:`shared.kafka.TaskConsumerLoop` (``on_processing_error``,
``on_produce_error``); the defaults are the services' policy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from shared.kafka.outgoing import OutgoingRecord

__all__ = ["ProcessingErrorCallback", "ProduceErrorCallback", "default_on_processing_error",
           "default_on_produce_error"]

#: ``(exc, record, logger) -> dead-letter it``; ``record`` is the consumed record (kafka-python's ``ConsumerRecord``).
ProcessingErrorCallback = Callable[[Exception, Any, logging.Logger], bool]
#: ``(exc, record, logger) -> dead-letter it``; ``record`` is the :class:`OutgoingRecord` the producer refused.
ProduceErrorCallback = Callable[[Exception, OutgoingRecord, logging.Logger], bool]


def default_on_processing_error(exc: Exception, record: Any, logger: logging.Logger) -> bool:
    """Dead-letter the request (``error.type`` ``processing_error``, or ``invalid`` when it failed
    to decode): one request the model or the parser fails on must not stall its partition."""
    return True


def default_on_produce_error(exc: Exception, record: OutgoingRecord, logger: logging.Logger) -> bool:
    """Dead-letter what the producer refused for good (``too_large`` or ``unproducible``); a
    retriable failure (the broker or a partition leader away) raises: the batch is consumed again."""
    return not getattr(exc, "retriable", False)
