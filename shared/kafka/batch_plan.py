"""What one polled micro-batch turns into: results, review copies and DLQ records.

Pure logic, no client calls, so every DLQ decision is unit-testable without a broker.
A review copy is the result with the request's input added (:func:`review_value`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.errors import MessageError
from shared.kafka.dlq import clean_headers, dead_letter
from shared.kafka.error_policy import ProcessingErrorCallback, default_on_processing_error
from shared.kafka.messages import decode_request
from shared.kafka.outgoing import OutgoingRecord
from shared.kafka.topics import TaskTopics
from shared.processors import Received, TaskProcessor
from shared.schemas import TaskRequestV1

__all__ = ["BatchPlan", "OutgoingRecord", "plan_batch", "review_value"]

logger = logging.getLogger(__name__)


@dataclass
class BatchPlan:
    """Records to produce for one batch, in input order, and what they count as."""

    outgoing: list[OutgoingRecord] = field(default_factory=list)
    results: int = 0
    review: int = 0
    # Review copies published without the request's input because with it they were over the size limit.
    review_without_input: int = 0
    dlq: int = 0
    dlq_types: dict[str, int] = field(default_factory=dict)
    dlq_max_value_bytes: int = 262_144

    def add_dlq(self, record: Any, error: MessageError, topics: TaskTopics) -> None:
        self.outgoing.append(dead_letter(topics.dlq, _source(record), error, key=record.key, value=record.value,
                                         headers=record.headers, max_value_bytes=self.dlq_max_value_bytes))
        self.count_dlq(error.error_type)

    def count_dlq(self, error_type: str) -> None:
        self.dlq += 1
        self.dlq_types[error_type] = self.dlq_types.get(error_type, 0) + 1

    def without(self, partitions: set[tuple[str, int]], topics: TaskTopics) -> "BatchPlan":
        """The plan less the outputs of the requests from ``partitions`` (``(topic, partition)``
        pairs, revoked while the batch was in the model), counted again."""
        kept = BatchPlan(dlq_max_value_bytes=self.dlq_max_value_bytes)
        for out in self.outgoing:
            if out.source[:2] in partitions:
                continue
            kept.outgoing.append(out)
            if out.topic == topics.results:
                kept.results += 1
            elif out.topic == topics.review:
                kept.review += 1
            elif out.topic == topics.dlq:
                kept.count_dlq(dict(out.headers).get("error.type", b"unknown").decode())
        return kept


def _source(record: Any) -> tuple[str, int, int]:
    return (record.topic, record.partition, record.offset)


def review_value(result: bytes, request: TaskRequestV1, include_input: bool = True) -> bytes:
    """A review record's value: the result's JSON object, byte for byte, with ``"input": {"text", "fields"}``
    appended when ``include_input``, so readers of results also read review records and a reviewer's verdict
    can become a training row (``slm feedback export``) without a lookup in the requests topic."""
    if not include_input:
        return result
    given = json.dumps({"text": request.text, "fields": request.fields}, ensure_ascii=False, separators=(",", ":"))
    # Spliced before the closing brace rather than re-serialised: the result's fields stay exactly as published.
    return result[:-1] + b',"input":' + given.encode("utf-8") + b"}"


def _process_isolating_failures(processor: TaskProcessor, valid: list[tuple[Any, Received]],
                                on_error: ProcessingErrorCallback) -> list[Any]:
    """Run the batch; if it fails, run items one by one so one bad item cannot sink the rest."""
    try:
        return processor.process([item for _, item in valid])
    except Exception:
        logger.exception('batch processing failed task=%s items=%d; retrying item by item', processor.task, len(valid))
    results: list[Any] = []
    for record, item in valid:
        try:
            results.extend(processor.process([item]))
        except Exception as exc:
            if not on_error(exc, record, logger):
                raise
            results.append(MessageError("processing_error", f"{type(exc).__name__}: {exc}"))
    return results


def plan_batch(records: Sequence[Any], processor: TaskProcessor, topics: TaskTopics, max_bytes: int,
               dlq_max_value_bytes: int = 262_144,
               on_processing_error: ProcessingErrorCallback = default_on_processing_error,
               review_input: bool = True) -> BatchPlan:
    """Validate each record, run the model on the valid ones and lay out every output record.

    ``records`` are kafka-python ``ConsumerRecord``-like objects (topic, partition, offset,
    key, value, headers). A DLQ record keeps at most ``dlq_max_value_bytes`` of the value.
    A request that fails to decode for a reason other than its content, or fails in the model,
    is dead-lettered when ``on_processing_error`` says so, else the exception propagates.
    A review copy carries the request's text and fields unless ``review_input`` is false
    (``SLM_REVIEW_INCLUDE_INPUT``) or the copy with them would be over ``max_bytes``: then it is the
    result's bytes alone, counted in ``review_without_input``, for the producer would refuse the
    larger copy and a request that was answered would be dead-lettered as ``too_large``.
    """
    plan = BatchPlan(dlq_max_value_bytes=dlq_max_value_bytes)
    valid: list[tuple[Any, Received]] = []
    for record in records:
        try:
            request = decode_request(record.value, max_bytes)
        except MessageError as error:
            plan.add_dlq(record, error, topics)
            continue
        except Exception as exc:
            if not on_processing_error(exc, record, logger):
                raise
            plan.add_dlq(record, MessageError("invalid", f"{type(exc).__name__}: {exc}"), topics)
            continue
        valid.append((record, Received.now(request, fallback_id=f"{record.topic}-{record.partition}-{record.offset}")))
    if not valid:
        return plan
    outputs = _process_isolating_failures(processor, valid, on_processing_error)
    for (record, received), output in zip(valid, outputs, strict=True):
        if isinstance(output, MessageError):
            plan.add_dlq(record, output, topics)
            continue
        value = output.model_dump_json().encode("utf-8")
        headers = clean_headers(record.headers)
        plan.outgoing.append(OutgoingRecord(topics.results, record.key, value, headers, _source(record), record.value))
        plan.results += 1
        if output.review:
            review = review_value(value, received.request, review_input)
            if len(review) > max_bytes:
                # The input is what made it too large: without it the copy is the result's own bytes, refused
                # only if the result is, and it still reaches the reviewers (the export counts it as such).
                review = value
                plan.review_without_input += 1
            plan.outgoing.append(OutgoingRecord(topics.review, record.key, review, headers, _source(record),
                                                record.value))
            plan.review += 1
    if plan.review_without_input:
        # A count and the limit only: the input is what did not fit, and it is never logged.
        logger.warning('review copies published without input (over max_bytes=%d) task=%s review_without_input=%d',
                       max_bytes, processor.task, plan.review_without_input)
    return plan
