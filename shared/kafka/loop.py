"""The consumer loop of a task service: poll, process, produce, commit; at least once.

One thread per service process. Each micro-batch is committed only after every record it
produced (results, review copies, DLQ records) is acknowledged by the broker; when a send
fails, the clients are rebuilt and the batch is consumed again from the last commit.
The commit after each batch is asynchronous (a synchronous one held the loop for 8 ms of a
34 ms cycle at half load); the offsets of finished batches are committed synchronously when
partitions are revoked (the rebalance listener, inside ``poll``) and before the clients close,
so a rebalance or a stop never hands over a partition with finished but uncommitted work.
``stop()`` (the service's shutdown hook, on SIGTERM) ends polling; the batch in hand is
finished and committed before the clients close.

Group membership is watched too: the consumer joins only once the requests topic is in its
own metadata (a join on empty metadata is followed by a second rebalance, which kafka-python
3.0 can leave hanging), and a rebalance that has not finished after ``rebalance_stall_s``
rebuilds the clients instead of leaving the service deaf to its topic.
"""

from __future__ import annotations

import logging
import threading
import time

from opentelemetry import trace

from shared.errors import MessageError, ProduceError, RebalanceStalled
from shared.kafka.batch import OutgoingRecord, plan_batch
from shared.kafka.dlq import dlq_headers
from shared.kafka.topics import TaskTopics, ensure_topics
from shared.settings import KafkaSettings
from shared.tasks import TaskProcessor
from shared.telemetry import TaskInstruments, context_from_headers

__all__ = ["TaskConsumerLoop"]

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

RETRY_BACKOFF_S = 1.0
# A synchronous commit (revocation, close) gives up after this: a broker that is down must not
# hold the loop; the next owner then re-reads from the last commit (at least once).
COMMIT_TIMEOUT_MS = 10_000


class TaskConsumerLoop:
    """Consume ``<task>.requests`` in group ``slm-<task>`` and publish results.

    Args:
        processor (`TaskProcessor`): the task's model behind the common interface.
        settings (`KafkaSettings`): connection and loop settings; ``bootstrap`` must be set.
    """

    def __init__(
        self,
        processor: TaskProcessor,
        settings: KafkaSettings,
    ) -> None:
        if not settings.bootstrap:
            raise ValueError("KafkaSettings.bootstrap is not set (SLM_KAFKA_BOOTSTRAP)")
        self.processor = processor
        self.settings = settings
        self.topics = TaskTopics(processor.task, settings.topic_prefix)
        self.group_id = settings.group_id or self.topics.group
        self.instruments = TaskInstruments(processor.task)
        self._stop = threading.Event()
        self._joined_group = threading.Event()
        self._thread: threading.Thread | None = None
        self.assignment: frozenset = frozenset()
        self.assignments = 0  # completed rebalances, for tests and logs
        self.lag = 0  # records behind the end of the assigned partitions, after the last poll
        self._rebalancing_since: float | None = None
        self._clock = time.monotonic
        self.error: BaseException | None = None
        self._consumer = None
        self._finished: dict = {}  # TopicPartition -> OffsetAndMetadata of the last finished batch

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run_forever, name=f"kafka-{self.processor.task}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop polling, finish and commit the batch in hand, close the clients."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning('consumer loop did not stop within timeout_s=%.0f', timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def is_ready(self) -> bool:
        """True once the consumer has joined its group and received an assignment."""
        return self.running and self._joined_group.is_set()

    def wait_ready(self, timeout: float) -> bool:
        return self._joined_group.wait(timeout)

    # -- the loop -------------------------------------------------------------------------

    def _run_forever(self) -> None:
        while not self._stop.is_set():
            try:
                self.run()
            except Exception as exc:  # noqa: BLE001 - the loop must outlive broker outages
                self.error = exc
                logger.exception('consumer loop failed task=%s; restarting in %.0fs', self.processor.task, RETRY_BACKOFF_S)
                self._joined_group.clear()
                self._rebalancing_since = None
                self._stop.wait(RETRY_BACKOFF_S)

    def _on_partitions_revoked(self, revoked) -> None:
        # No batch is in hand (batches are finished between polls); their asynchronous commits
        # may still be in flight, so the revoked partitions' offsets are committed and waited for.
        self._rebalancing_since = self._clock()
        self._commit_finished(partitions=set(revoked))
        logger.info('partitions revoked task=%s partitions=%s', self.processor.task, _names(revoked))

    def _commit_finished(self, partitions: set | None = None) -> None:
        """Commit the finished batches' offsets synchronously (those of ``partitions``, or all)."""
        offsets = {tp: om for tp, om in self._finished.items() if partitions is None or tp in partitions}
        if not offsets or self._consumer is None:
            return
        try:
            self._consumer.commit(offsets, timeout_ms=COMMIT_TIMEOUT_MS)
        except Exception as exc:  # noqa: BLE001 - the next owner re-reads from the last commit: at least once
            logger.warning('commit of finished offsets failed task=%s partitions=%s error="%s"', self.processor.task,
                           _names(offsets), exc)
        for tp in offsets:
            self._finished.pop(tp, None)

    def _on_commit(self, offsets, response) -> None:
        if isinstance(response, Exception):
            logger.warning('asynchronous commit failed task=%s partitions=%s error="%s" (committed again with '
                           'the next batch or at revocation)', self.processor.task, _names(offsets), response)

    def _on_partitions_assigned(self, assigned) -> None:
        self._rebalancing_since = None
        self.assignment = frozenset(assigned)
        self.assignments += 1
        self._joined_group.set()
        logger.info('partitions assigned task=%s partitions=%s', self.processor.task, _names(assigned))
        if not assigned:
            logger.warning('no partitions assigned task=%s group=%s: the group has more consumers than %s has '
                           'partitions, so this one only serves REST', self.processor.task, self.group_id,
                           self.topics.requests)

    def _check_rebalance(self) -> None:
        """Raise :class:`RebalanceStalled` when a rebalance has lasted past the settings' bound."""
        since = self._rebalancing_since
        if since is not None and self._clock() - since > self.settings.rebalance_stall_s:
            raise RebalanceStalled(f"group {self.group_id}: no assignment {self._clock() - since:.0f}s after "
                                   f"the partitions were revoked (rebalance_stall_s="
                                   f"{self.settings.rebalance_stall_s:.0f})")

    def _clients(self):
        from kafka import KafkaConsumer, KafkaProducer, ConsumerRebalanceListener

        loop = self

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked):
                loop._on_partitions_revoked(revoked)

            def on_partitions_assigned(self, assigned):
                loop._on_partitions_assigned(assigned)

        options = self.settings.client_options()
        consumer = KafkaConsumer(
            **options,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset=self.settings.auto_offset_reset,
            max_poll_records=self.settings.max_batch,
        )
        try:
            consumer.subscribe([self.topics.requests], listener=Listener())
            self._wait_for_topic_metadata(consumer)
            producer = KafkaProducer(**options, acks="all", enable_idempotence=True, linger_ms=2)
        except Exception:
            consumer.close(autocommit=False)
            raise
        return consumer, producer

    def _wait_for_topic_metadata(self, consumer, timeout: float = 30.0) -> None:
        """Wait, after subscribing and before the first poll (which joins the group), until the
        requests topic's partitions are in the consumer's metadata.

        kafka-python records the subscribed topics' partitions when it computes an assignment;
        joining before the metadata has arrived assigns against an empty snapshot, and the
        metadata that follows triggers a second rebalance at once. ``consumer.topics()`` is a
        blocking metadata fetch, so the snapshot is current when it returns.
        """
        deadline = time.monotonic() + timeout
        while not self._stop.is_set() and time.monotonic() < deadline:
            if self.topics.requests in consumer.topics() and consumer.partitions_for_topic(self.topics.requests):
                return
            self._stop.wait(0.2)
        logger.warning('no partition metadata for topic=%s after %.0fs; joining anyway', self.topics.requests, timeout)

    def run(self) -> None:
        """Poll until stopped; raises only on client-level failures (``_run_forever`` retries)."""
        if self.settings.create_topics:
            ensure_topics(self.settings, self.topics.all())
        consumer, producer = self._clients()
        self._consumer, self._finished = consumer, {}
        logger.info('consumer loop started task=%s group=%s topic=%s', self.processor.task, self.group_id,
                    self.topics.requests)
        try:
            while not self._stop.is_set():
                polled = consumer.poll(timeout_ms=self.settings.poll_timeout_ms, max_records=self.settings.max_batch)
                records = [record for batch in polled.values() for record in batch]
                if records:
                    self._handle(consumer, producer, records)
                self.lag = _lag(consumer)
                self._check_rebalance()
        finally:
            self._commit_finished()
            producer.close(timeout=10)
            consumer.close(autocommit=False)
            self._consumer = None
            logger.info('consumer loop stopped task=%s', self.processor.task)

    def _handle(self, consumer, producer, records) -> None:
        from kafka import TopicPartition
        from kafka.structs import OffsetAndMetadata

        started = time.perf_counter()
        links = [trace.Link(ctx_span) for ctx_span in _remote_spans(records)]
        with tracer.start_as_current_span(
            f"{self.processor.task} process batch",
            kind=trace.SpanKind.CONSUMER,
            links=links,
            attributes={"messaging.system": "kafka", "messaging.destination.name": self.topics.requests,
                        "messaging.batch.message_count": len(records), "messaging.consumer.group.name": self.group_id},
        ) as span:
            plan = plan_batch(records, self.processor, self.topics, self.settings.max_message_bytes)
            plan.dlq += self._produce(producer, plan.outgoing)
            last: dict = {}
            for record in records:
                tp = TopicPartition(record.topic, record.partition)
                last[tp] = max(last.get(tp, -1), record.offset)
            finished = {tp: OffsetAndMetadata(offset + 1, "", -1) for tp, offset in last.items()}
            self._finished.update(finished)
            consumer.commit_async(finished, callback=self._on_commit)
            latency_ms = (time.perf_counter() - started) * 1000
            span.set_attributes({"slm.results": plan.results, "slm.review": plan.review, "slm.dlq": plan.dlq})
        self.instruments.record_batch(polled=len(records), results=plan.results, review=plan.review, dlq=plan.dlq,
                                      latency_ms=latency_ms, source="kafka")
        logger.info('batch task=%s records=%d results=%d review=%d dlq=%d dlq_types="%s" latency_ms=%.1f',
                    self.processor.task, len(records), plan.results, plan.review, plan.dlq,
                    ",".join(f"{k}:{v}" for k, v in sorted(plan.dlq_types.items())), latency_ms)


    def _produce(self, producer, outgoing: list[OutgoingRecord]) -> int:
        """Send every record and wait for the acknowledgements.

        A record the producer refuses for good (too large, not serialisable) is replaced by a
        DLQ record without the value, ``error.type=unproducible``, so it cannot block its
        partition. A retriable failure raises :class:`ProduceError`: the batch is not
        committed, the clients are rebuilt and the batch is consumed again from the last
        commit (at least once). Returns the number of records redirected to the DLQ.
        """
        pending = []
        refused: list[tuple[OutgoingRecord, BaseException]] = []
        for out in outgoing:
            try:
                pending.append((out, producer.send(out.topic, value=out.value, key=out.key, headers=out.headers)))
            except Exception as exc:  # noqa: BLE001 - synchronous refusal of this one record
                refused.append((out, exc))
        producer.flush()
        for out, future in pending:
            if future.failed():
                if getattr(future.exception, "retriable", False):
                    raise ProduceError(f"{out.topic}: {future.exception}")
                refused.append((out, future.exception))
        if not refused:
            return 0
        fallbacks = []
        for out, exc in refused:
            error = MessageError("unproducible", f"could not produce to {out.topic}: {type(exc).__name__}: {exc}")
            headers = dlq_headers(out.headers, error, *out.source)
            key = out.key if out.key is not None else b""
            fallbacks.append(producer.send(self.topics.dlq, value=None, key=key, headers=headers))
            logger.error('unproducible record task=%s topic=%s source=%s error="%s"', self.processor.task,
                         out.topic, out.source, exc)
        producer.flush()
        if any(f.failed() for f in fallbacks):
            raise ProduceError("could not publish the DLQ record of an unproducible result")
        return len(refused)


def _lag(consumer) -> int:
    """Records between the position and the high watermark, summed over the assignment.

    Only partitions with a known high watermark count (it arrives with the first fetch), so
    this reads local state and never blocks the loop.
    """
    total = 0
    for tp in consumer.assignment():
        high = consumer.highwater(tp)
        if high is not None:
            total += max(0, high - consumer.position(tp))
    return total


def _names(partitions) -> str:
    return ",".join(sorted(f"{tp.topic}[{tp.partition}]" for tp in partitions)) or "none"


def _remote_spans(records):
    for record in records:
        ctx = context_from_headers(record.headers)
        if ctx is None:
            continue
        span_context = trace.get_current_span(ctx).get_span_context()
        if span_context.is_valid:
            yield span_context
