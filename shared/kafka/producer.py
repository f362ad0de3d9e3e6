"""The sending side of a consumer loop: the producer, and a batch's sends with the DLQ fallback.

:func:`build_producer` holds every producer option in one place (acknowledgements, idempotence,
batching, transactions). :class:`Publisher` sends a batch's records, waits for the broker's
acknowledgements, and hands each record refused to the error policy
(:mod:`shared.kafka.error_policy`): by default a record refused for good is replaced by a dead
letter, so one result the broker cannot take does not stall its partition.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from shared.errors import MessageError, ProduceError
from shared.kafka.batch_plan import BatchPlan
from shared.kafka.dlq import dead_letter
from shared.kafka.error_policy import ProduceErrorCallback
from shared.kafka.outgoing import OutgoingRecord
from shared.kafka.settings import KafkaSettings
from shared.kafka.shadow import own_records
from shared.kafka.topics import TaskTopics

__all__ = ["Publisher", "build_producer"]

logger = logging.getLogger(__name__)


def build_producer(settings: KafkaSettings, transactional_id: str | None):
    """The loop's producer: every record acknowledged by all in-sync replicas, idempotent, and
    transactional when ``transactional_id`` is set (:mod:`shared.kafka.checkpoint` initialises it).

    Its batches are compressed with ``compression_type``. ``linger_ms`` stays short: the publisher
    flushes after the last send of a micro-batch, so the linger only lets the sends before the
    flush fill their batches, and a longer one would change nothing."""
    from kafka import KafkaProducer

    transactional = {}
    if transactional_id:
        transactional = {"transactional_id": transactional_id,
                         "transaction_timeout_ms": settings.transaction_timeout_ms}
    compression = None if settings.compression_type == "none" else settings.compression_type
    return KafkaProducer(**settings.client_options(), acks="all", enable_idempotence=True, linger_ms=2,
                         compression_type=compression, **transactional)


class Publisher:
    """Sends a batch's records and waits for them; stands in a dead letter for each one refused.

    Args:
        topics (`TaskTopics`): the task's topics; a shadow's publish its results only
            (:func:`shared.kafka.shadow.own_records`).
        on_produce_error (`ProduceErrorCallback`): for a record the producer refused; True
            dead-letters it, False raises :class:`ProduceError`.
        dlq_max_value_bytes (`int`): most bytes of the request's value a dead letter keeps.
        in_transaction (`bool`): the sends are part of a Kafka transaction (exactly once).
    """

    def __init__(self, topics: TaskTopics, on_produce_error: ProduceErrorCallback, *, dlq_max_value_bytes: int,
                 in_transaction: bool) -> None:
        self.topics = topics
        self.on_produce_error = on_produce_error
        self.dlq_max_value_bytes = dlq_max_value_bytes
        self.in_transaction = in_transaction

    def publish(self, producer, outgoing: Sequence[OutgoingRecord], plan: BatchPlan | None = None) -> None:
        """Send every record and wait for the acknowledgements.

        A record the producer refuses is handed to ``on_produce_error``. By default one refused for
        good is replaced by one DLQ record per request it came from: ``error.type=too_large`` when it
        was refused for its size, else ``unproducible``; the request's value is kept, cut to
        ``dlq_max_value_bytes`` (a refused DLQ record keeps only the pointer, ``source.*``). A request
        counts once in ``plan`` (results, review, DLQ). A failure the policy does not dead-letter (by
        default a retriable one) raises :class:`ProduceError`: the batch is not committed, the clients
        are rebuilt and the batch is consumed again from the last commit (at least once).
        """
        outgoing = own_records(outgoing, self.topics)
        refused = self._send_all(producer, outgoing)
        for out, exc in refused:
            if not self.on_produce_error(exc, out, logger):
                raise ProduceError(f"{out.topic}: {exc}")
        if refused:
            self._dead_letter_refused(producer, outgoing, refused, plan)

    def _send_all(self, producer, outgoing: list[OutgoingRecord]) -> list[tuple[OutgoingRecord, BaseException]]:
        """Send ``outgoing``, flush, and return the records refused, with why."""
        pending = []
        refused: list[tuple[OutgoingRecord, BaseException]] = []
        for out in outgoing:
            try:
                pending.append((out, producer.send(out.topic, value=out.value, key=out.key, headers=out.headers)))
            except Exception as exc:  # noqa: BLE001 - synchronous refusal of this one record
                refused.append((out, exc))
        producer.flush()
        failed = [(out, future.exception) for out, future in pending if future.failed()]
        if failed and self.in_transaction:
            # A record the broker refused leaves the transaction abortable only: it is aborted and
            # the batch consumed again (synchronous refusals, such as a size over max_request_size,
            # never entered it and are dead-lettered in it as usual).
            out, exc = failed[0]
            raise ProduceError(f"{out.topic}: {exc} (in a transaction: aborted)")
        return refused + failed

    def _dead_letter_refused(self, producer, outgoing: list[OutgoingRecord],
                             refused: list[tuple[OutgoingRecord, BaseException]], plan: BatchPlan | None) -> None:
        """One dead letter per request whose records were refused, counted once in ``plan``."""
        dead = {out.source for out in outgoing if out.topic == self.topics.dlq}
        fallbacks: dict[tuple, OutgoingRecord] = {}
        for out, exc in refused:
            if plan is not None and out.topic == self.topics.results:
                plan.results -= 1
            elif plan is not None and out.topic == self.topics.review:
                plan.review -= 1
            if out.source in fallbacks:
                continue
            error_type = "too_large" if _too_large(exc) else "unproducible"
            error = MessageError(error_type, f"could not produce to {out.topic}: {type(exc).__name__}: {exc}")
            # A refused DLQ record already holds the request's value (cut): keep only the pointer then.
            fallbacks[out.source] = dead_letter(self.topics.dlq, out.source, error, key=out.key,
                                                value=None if out.topic == self.topics.dlq else out.original,
                                                headers=out.headers, max_value_bytes=self.dlq_max_value_bytes)
            if plan is not None and out.source not in dead:
                plan.count_dlq(error_type)  # a request already dead-lettered in the batch counts once
            logger.error('unproducible record task=%s topic=%s source=%s error="%s: %s"', self.topics.task,
                         out.topic, out.source, type(exc).__name__, exc)
        sent = [producer.send(f.topic, value=f.value, key=f.key, headers=f.headers)
                for f in own_records(list(fallbacks.values()), self.topics)]
        producer.flush()
        if any(f.failed() for f in sent):
            raise ProduceError("could not publish the DLQ record of an unproducible result")


def _too_large(exc: BaseException) -> bool:
    """Refused for its size: kafka-python's MessageSizeTooLargeError, locally or from the broker."""
    return "TooLarge" in type(exc).__name__ or "too large" in str(exc).lower()
