"""Kafka side of a task service: topic names, message decoding, DLQ records, the consumer loop."""

from shared.kafka.dlq import DLQ_HEADERS, dlq_headers
from shared.kafka.loop import TaskConsumerLoop
from shared.kafka.messages import decode_request
from shared.kafka.topics import TaskTopics, ensure_topics

__all__ = ["DLQ_HEADERS", "TaskConsumerLoop", "TaskTopics", "decode_request", "dlq_headers", "ensure_topics"]
