"""Kafka side of a task service: topic names, message decoding, DLQ records, the error policy, the consumer loop."""

from shared.kafka.dlq import DLQ_HEADERS, dead_letter, dlq_headers
from shared.kafka.error_policy import (ProcessingErrorCallback, ProduceErrorCallback, default_on_processing_error,
                                       default_on_produce_error)
from shared.kafka.loop import TaskConsumerLoop
from shared.kafka.messages import decode_request
from shared.kafka.outgoing import OutgoingRecord
from shared.kafka.topics import TaskTopics, ensure_topics

__all__ = ["DLQ_HEADERS", "OutgoingRecord", "ProcessingErrorCallback", "ProduceErrorCallback", "TaskConsumerLoop",
           "TaskTopics", "dead_letter", "decode_request", "default_on_processing_error", "default_on_produce_error",
           "dlq_headers", "ensure_topics"]
