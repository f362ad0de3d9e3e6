"""The consumer loop of a task service: poll, process, produce, commit; at least once, or exactly once.

One thread per service process runs :meth:`TaskConsumerLoop.run` and owns both clients: it polls
micro-batches of ``<task>.requests``, and while the model plans batch N (its results, review
copies and dead letters, :mod:`shared.kafka.batch_plan`) in the model's thread
(:mod:`shared.kafka.pipeline`), it polls batch N+1. Once N is planned, N+1 goes to the model at
once, and the loop's thread sends N's records (:mod:`shared.kafka.producer`) and commits N when
every record is acknowledged (:mod:`shared.kafka.checkpoint`, which also says how exactly-once
delivery works: one transaction per batch, begun and committed here). When a send fails, the
clients are rebuilt and the batches in hand are consumed again from the last commit. A record the
client cannot decode (:mod:`shared.kafka.poison`) goes to the DLQ as ``error.type=undecodable`` and
the partition moves on past it, once the batch in the model is committed.

The rebalance callbacks live here too. They run inside ``poll``, so never while a batch is being
sent or committed. A revocation commits the finished offsets of the revoked partitions before the
group moves on, so a rebalance or a stop never hands over a partition with finished but
uncommitted work; the records of revoked partitions still in the model or polled ahead are
abandoned (never sent, never committed) and read again by their next owner. With
``group_instance_id`` set the consumer is a static member: a restart after a crash takes its
partitions back at once, and a graceful stop leaves the group. ``stop()`` (the service's shutdown
hook, on SIGTERM) ends polling; the batch in the model is finished and committed before the clients
close, and records polled ahead are left for the next owner. What the probes and metrics read
(readiness, liveness, broker silence, stalled rebalances) is kept by :mod:`shared.kafka.loop_health`.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future

from opentelemetry import trace

from shared.errors import ProducerFenced
from shared.kafka.batch_plan import BatchPlan, plan_batch
from shared.kafka.checkpoint import Checkpoint, commit_offsets, offsets_after, transactional_id_of
from shared.kafka.consumer import (RequestPoller, leave_group, partition_lag, partition_names, probe_consumer,
                                   rebalance_listener, subscribe)
from shared.kafka.error_policy import (ProcessingErrorCallback, ProduceErrorCallback, default_on_processing_error,
                                       default_on_produce_error)
from shared.kafka.loop_health import LoopHealth
from shared.kafka.outgoing import OutgoingRecord
from shared.kafka.pipeline import InFlight, ModelWorker, Revocations
from shared.kafka.poison import find_undecodable, is_decode_error, undecodable_dead_letters
from shared.kafka.producer import Publisher, build_producer
from shared.kafka.settings import KafkaSettings
from shared.kafka.topics import TaskTopics, ensure_topics
from shared.kafka.tracing import batch_span, traced_answers
from shared.processors import TaskProcessor
from shared.telemetry import TaskInstruments
from shared.telemetry.instruments import role_of

__all__ = ["TaskConsumerLoop"]

logger = logging.getLogger(__name__)

RETRY_BACKOFF_S = 1.0


class TaskConsumerLoop:
    """Consume ``<task>.requests`` in group ``slm-<task>`` and publish results.

    Args:
        processor (`TaskProcessor`): the task's model behind the common interface.
        settings (`KafkaSettings`): connection and loop settings; ``bootstrap`` must be set.
        on_processing_error (`ProcessingErrorCallback`, defaults to dead-lettering the request):
            for a request that fails in the model, or to decode for a reason other than its content.
        on_produce_error (`ProduceErrorCallback`, defaults to dead-lettering what is refused for
            good): for a record the producer refused; False raises :class:`ProduceError` and the
            batch is consumed again. See :mod:`shared.kafka.error_policy`.
        review_input (`bool`, defaults to `True`): review records carry the request's text and fields
            (``SLM_REVIEW_INCLUDE_INPUT``, :func:`shared.kafka.batch_plan.review_value`).
    """

    def __init__(
        self,
        processor: TaskProcessor,
        settings: KafkaSettings,
        *,
        on_processing_error: ProcessingErrorCallback = default_on_processing_error,
        on_produce_error: ProduceErrorCallback = default_on_produce_error,
        review_input: bool = True,
    ) -> None:
        if not settings.bootstrap:
            raise ValueError("KafkaSettings.bootstrap is not set (SLM_KAFKA_BOOTSTRAP)")
        self.processor = processor
        self.settings = settings
        self.on_processing_error = on_processing_error
        self.review_input = review_input
        self.topics = TaskTopics.of(processor.task, settings)  # a shadow's topics and group (settings.shadow)
        self.group_id = self.topics.consumer_group(settings.group_id)
        self.instruments = TaskInstruments(processor.task, getattr(processor, "model_id", "unknown"),
                                           role=role_of(settings.shadow))
        self.transactional_id = transactional_id_of(settings, self.group_id, processor.task)
        self.health = LoopHealth(settings, processor.task, self.group_id)
        self.checkpoint = Checkpoint(self.transactional_id, processor.task, on_contact=self.health.contact)
        self.publisher = Publisher(self.topics, on_produce_error, dlq_max_value_bytes=settings.dlq_max_value_bytes,
                                   in_transaction=bool(self.transactional_id))
        self._stop = threading.Event()
        self._revocations = Revocations()
        self._joined_group = threading.Event()
        self._thread: threading.Thread | None = None
        self.assignment: frozenset = frozenset()
        self.assignments = 0  # completed rebalances, for tests and logs
        self.lag = 0  # records behind the end of the assigned partitions, after the last poll
        self.partition_lag: dict[tuple[str, int], int] = {}  # the same, per (topic, partition)
        self.undecodable = 0  # records dead-lettered because the client could not decode them
        self.fenced = False  # a newer instance took this one's transactional id: the loop stopped
        self.instruments.observe_loop(self)

    @property
    def on_produce_error(self) -> ProduceErrorCallback:
        return self.publisher.on_produce_error

    # -- lifecycle and probes -----------------------------------------------------------------

    def start(self) -> None:
        self.health.started()
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

    def wait_ready(self, timeout: float) -> bool:
        return self._joined_group.wait(timeout)

    def is_ready(self) -> bool:
        """Whether the service should receive REST traffic, as far as Kafka is concerned.

        With ``unready_after_s`` 0 (the default), while the loop runs: a broker outage or a slow
        group join takes Kafka's work away, not REST's, so the pod stays in its Service (Kafka's
        health is :meth:`seconds_since_contact`, a metric and a log line). Above 0, also only once
        the group is joined and the broker reached within that many seconds.
        """
        if not self.settings.unready_after_s:
            return self.running
        return self.running and self._joined_group.is_set() and self.health.broker_reachable()

    def is_alive(self) -> bool:
        """False when only a restart helps: the loop stopped on its own (fenced), or has not come
        round its poll loop for ``stuck_after_s`` (stuck in a call). A broker outage is not that:
        the loop goes on polling, and reconnects when the broker is back."""
        if self._stop.is_set():
            return True  # stopping on purpose
        if not self.running:
            return self._thread is None  # never started: nothing to restart
        return not self.health.stuck()

    def seconds_since_contact(self) -> float | None:
        """Seconds since the broker last answered the loop; None before the first answer."""
        return self.health.seconds_since_contact()

    def seconds_silent(self) -> float | None:
        """Seconds the broker has been silent to the loop (the gauge); None before the start."""
        return self.health.seconds_silent()

    def broker_reachable(self) -> bool:
        """Whether the broker answered the loop within the last ``unready_after_s``."""
        return self.health.broker_reachable()

    # -- rebalance callbacks (kafka-python's IO thread) ---------------------------------------

    def _on_partitions_assigned(self, assigned) -> None:
        self.health.rebalance_over()
        self.assignment = frozenset(assigned)
        self.assignments += 1
        self._joined_group.set()
        logger.info('partitions assigned task=%s partitions=%s', self.processor.task, partition_names(assigned))
        if not assigned:
            logger.warning('no partitions assigned task=%s group=%s: the group has more consumers than %s has '
                           'partitions, so this one only serves REST', self.processor.task, self.group_id,
                           self.topics.requests)

    def _on_partitions_revoked(self, revoked) -> dict:
        """Bookkeeping of a revocation; returns the finished offsets of ``revoked``, which the
        listener commits (:meth:`Checkpoint.commit_revoked`) before the group moves on."""
        self.health.rebalance_started()
        logger.info('partitions revoked task=%s partitions=%s', self.processor.task, partition_names(revoked))
        self._revocations.note(revoked)
        return self.checkpoint.take_finished(set(revoked))

    def _on_partitions_lost(self, lost) -> None:
        """Partitions taken away by the coordinator (session expired): another member may own
        them already, so nothing is committed; their finished batches are read again there."""
        self.health.rebalance_started()
        self._revocations.note(lost)
        dropped = self.checkpoint.take_finished(set(lost))
        logger.warning('partitions lost task=%s partitions=%s uncommitted=%s', self.processor.task,
                       partition_names(lost), partition_names(dropped))

    # -- the loop -------------------------------------------------------------------------------

    def _run_forever(self) -> None:
        while not self._stop.is_set():
            try:
                self.run()
            except ProducerFenced as exc:
                self.fenced = True
                self._joined_group.clear()
                logger.error('consumer loop stopped task=%s: %s', self.processor.task, exc)
                return
            except Exception:  # noqa: BLE001 - the loop must outlive broker outages
                self.health.came_round()
                logger.exception('consumer loop failed task=%s; restarting in %.0fs', self.processor.task, RETRY_BACKOFF_S)
                self._joined_group.clear()
                self.health.rebalance_over()
                self._stop.wait(RETRY_BACKOFF_S)

    def _clients(self):
        """A consumer subscribed to the requests topic, and a producer (transactions initialised)."""
        listener = rebalance_listener(self._on_partitions_revoked, self.checkpoint.commit_revoked,
                                      self._on_partitions_assigned, self._on_partitions_lost)
        consumer = subscribe(self.settings, self.group_id, self.topics.requests, listener, self._stop)
        producer = None
        try:
            producer = build_producer(self.settings, self.transactional_id)
            self.checkpoint.init_transactions(producer)
        except BaseException:
            if producer is not None:
                producer.close(timeout=5)
            consumer.close(autocommit=False)
            raise
        return consumer, producer

    def run(self) -> None:
        """Poll until stopped; raises only on client-level failures (``_run_forever`` retries)."""
        if self.settings.create_topics:
            ensure_topics(self.settings, self.topics.all())
        self.health.came_round()
        consumer, producer = self._clients()
        self.checkpoint.attach(consumer)
        self.health.contact()
        logger.info('consumer loop started task=%s group=%s member=%s topic=%s', self.processor.task, self.group_id,
                    self.settings.group_instance_id or "dynamic", self.topics.requests)
        poller = RequestPoller(consumer, self.settings, self._revocations, self._stop)
        worker = ModelWorker(f"kafka-{self.processor.task}-model")
        inflight: InFlight | None = None  # the batch in the model, not yet committed
        try:
            while not self._stop.is_set():
                self.health.came_round()
                try:
                    records = poller.next_batch(inflight)
                except Exception as exc:
                    if getattr(exc, "retriable", False):
                        self._wait_for_broker(exc)  # the clients reconnect by themselves: keep them
                        continue
                    if not is_decode_error(exc):
                        raise
                    # The poison's partition is committed past it: the records before it, in the model, first.
                    inflight = self._finish(consumer, producer, inflight)
                    if not self._skip_undecodable(consumer, producer, exc):
                        raise
                    continue
                if self._stop.is_set():
                    records = []  # polled ahead, never in the model: the next owner reads them
                if inflight is not None:
                    # The next batch is queued for the model before this one is sent: the model goes on at once.
                    following = self._submit(worker, records) if records else None
                    try:
                        inflight = self._finish(consumer, producer, inflight)
                    except BaseException:
                        inflight = following
                        raise
                    inflight = following
                elif records:
                    inflight = self._submit(worker, records)
                else:
                    self.health.check_broker(consumer, self.topics.requests)
                self.partition_lag = partition_lag(consumer)
                self.lag = sum(self.partition_lag.values())
                self.health.check_rebalance()
            inflight = self._finish(consumer, producer, inflight)  # stopping: the batch in the model is committed
        finally:
            if inflight is not None:  # a failure: the batch is consumed again from the last commit
                inflight.end()
            worker.close()
            self.checkpoint.commit_finished()
            producer.close(timeout=10)
            consumer.close(autocommit=False)
            self.checkpoint.detach()
            if self._stop.is_set():
                leave_group(self.settings, self.group_id, self.processor.task)
            logger.info('consumer loop stopped task=%s', self.processor.task)

    def _submit(self, worker: ModelWorker, records: list) -> InFlight:
        """Hand ``records`` to the model's thread: it plans them under the batch's span."""
        span = batch_span(self.topics, self.group_id, records)
        return InFlight(records, worker.submit(lambda: self._plan(records, span)), span, time.perf_counter())

    def _plan(self, records: list, span) -> BatchPlan:
        """Plan one batch (the model's thread): pure work, no client call."""
        with trace.use_span(span, end_on_exit=False):
            started_ns = time.time_ns()
            plan = plan_batch(records, self.processor, self.topics, self.settings.max_message_bytes,
                              self.settings.dlq_max_value_bytes, self.on_processing_error, self.review_input)
            plan.outgoing[:] = traced_answers(plan.outgoing, span, started_ns, self.topics)
        return plan

    def _wait_for_broker(self, exc: BaseException) -> None:
        """A retriable failure of ``poll`` (broker or coordinator unreachable): keep the clients,
        which reconnect within ``reconnect_backoff_max_ms`` once the broker is back. Rebuilding
        them would wait out the admin client's and the consumer's bootstrap timeouts instead.
        Readiness drops once the broker has been out of reach for ``unready_after_s``."""
        self.health.report_outage(exc)
        self.health.check_rebalance()
        self._stop.wait(min(1.0, self.settings.poll_timeout_ms / 1000))

    def _handle(self, consumer, producer, records) -> None:
        """Plan, send and commit one batch in the calling thread (the pipeline's steps, unpipelined)."""
        span = batch_span(self.topics, self.group_id, records)
        planned: Future = Future()
        try:
            planned.set_result(self._plan(records, span))
        except Exception as exc:  # noqa: BLE001 - raised again by _finish, as the model's thread's would be
            planned.set_exception(exc)
        self._finish(consumer, producer, InFlight(records, planned, span, time.perf_counter()))

    def _finish(self, consumer, producer, inflight: InFlight | None) -> None:
        """Wait for the model's plan of ``inflight``, send its records and commit the batch; traced
        and counted.

        The model's exception is raised here, in the loop's thread, as the processing error policy
        left it (:func:`~shared.kafka.batch_plan.plan_batch`): the batch is not committed, and the
        clients are rebuilt. Records abandoned at a revocation are left out of the sends and the
        offsets; a batch abandoned whole is only dropped.
        """
        if inflight is None:
            return None
        with trace.use_span(inflight.span, end_on_exit=True) as span:
            try:
                plan = inflight.future.result()
            except Exception:
                if inflight.kept():
                    raise
                plan = BatchPlan()  # its error no longer matters: every record is another owner's now
            records = inflight.kept()
            if inflight.abandoned:
                plan = plan.without(inflight.abandoned, self.topics)
            if not records:
                return None
            finished = offsets_after(records)
            with self.checkpoint.batch(producer):
                self.publisher.publish(producer, plan.outgoing, plan)
                self.health.contact()
                self.checkpoint.commit(consumer, producer, finished)
            latency_ms = (time.perf_counter() - inflight.started) * 1000
            span.set_attributes({"slm.results": plan.results, "slm.review": plan.review, "slm.dlq": plan.dlq})
        self.instruments.record_batch(polled=len(records), results=plan.results, review=plan.review,
                                      dlq_types=plan.dlq_types, latency_ms=latency_ms, path="kafka")
        self.instruments.record_latencies(_since_produced(records, plan.outgoing, self.topics.dlq), path="kafka")
        logger.info('batch task=%s records=%d results=%d review=%d dlq=%d dlq_types="%s" latency_ms=%.1f',
                    self.processor.task, len(records), plan.results, plan.review, plan.dlq,
                    ",".join(f"{k}:{v}" for k, v in sorted(plan.dlq_types.items())), latency_ms)
        return None

    def _skip_undecodable(self, consumer, producer, exc: BaseException) -> bool:
        """Dead-letter the records ``poll`` could not decode and seek past them.

        Returns False when no assigned partition holds an unreadable record (the failure was
        something else; the caller re-raises it).
        """
        assigned = list(consumer.assignment())
        if not assigned:
            return False  # nothing was fetched, so no record is to blame
        found = find_undecodable(consumer, assigned, lambda: probe_consumer(self.settings))
        if found is None:
            logger.warning('poll failed task=%s error="%s: %s" and every partition reads; restarting the clients',
                           self.processor.task, type(exc).__name__, exc)
            return False
        outgoing = undecodable_dead_letters(found, lambda: probe_consumer(self.settings, check_crcs=False),
                                            self.topics.dlq, self.settings.dlq_max_value_bytes)
        started = time.perf_counter()
        with self.checkpoint.batch(producer):
            self.publisher.publish(producer, outgoing)
            self.checkpoint.commit(consumer, producer, commit_offsets({found.partition: found.end}))
        consumer.seek(found.partition, found.end)
        self.undecodable += len(outgoing)
        self.instruments.record_batch(polled=len(outgoing), results=0, review=0,
                                      dlq_types={"undecodable": len(outgoing)},
                                      latency_ms=(time.perf_counter() - started) * 1000, path="kafka")
        logger.warning('undecodable records task=%s partition=%s offsets=%d-%d dlq=%d error="%s"', self.processor.task,
                       partition_names([found.partition]), found.first, found.end - 1, len(outgoing), found.error)
        return True


def _since_produced(records, outgoing: list[OutgoingRecord], dlq_topic: str) -> list[float]:
    """Milliseconds from each answered record's timestamp (its producer's clock, or the broker's
    for LogAppendTime topics) to now, when its answer is committed: the end-to-end latency."""
    answered = {out.source for out in outgoing if out.topic != dlq_topic}
    now_ms = time.time() * 1000
    stamps = [(getattr(record, "timestamp", None) or 0) if (record.topic, record.partition, record.offset) in answered
              else 0 for record in records]
    return [max(0.0, now_ms - stamp) for stamp in stamps if stamp > 0]
