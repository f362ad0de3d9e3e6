"""The consumer loop of a task service: poll, process, produce, commit; at least once, or exactly once.

Exactly once (``delivery="exactly_once"``): each micro-batch is one Kafka transaction holding its
results, review copies and DLQ records and the batch's consumed offsets (committed through the
producer with the consumer's group metadata, KIP-447); requests are read ``read_committed``. Any
failure aborts the transaction and the batch is consumed again from the last committed offsets,
so a reader with ``isolation_level=read_committed`` sees each answer once. The transactional id
is stable per pod or replica (from ``group_instance_id``): a restarted instance fences its
predecessor and aborts what it left open. A batch is committed before the next poll, so no
transaction is open when partitions are revoked. An instance that finds itself fenced (a newer
one runs under its id) stops consuming.

One thread per service process. Each micro-batch is committed only after every record it
produced (results, review copies, DLQ records) is acknowledged by the broker; when a send
fails, the clients are rebuilt and the batch is consumed again from the last commit.
The commit after each batch is asynchronous (a synchronous one held the loop for 8 ms of a
34 ms cycle at half load). When partitions are revoked, their finished offsets are committed
and waited for by the rebalance listener: kafka-python 3 runs the listener on its IO thread,
where a blocking ``commit()`` fails ("Cannot block on net.run() from the IO thread itself"),
so the listener is asynchronous and awaits ``commit_async``'s future, which that thread
completes. Before the clients close, the loop thread commits them synchronously. A rebalance
or a stop never hands over a partition with finished but uncommitted work.

A record kafka-python cannot decode (see :mod:`shared.kafka.poison`) goes to the DLQ as
``error.type=undecodable`` and the partition moves on past it. With ``group_instance_id``
set the consumer is a static member: a restart after a crash takes its partitions back at
once. Readiness is REST's: by default a broker outage leaves :meth:`TaskConsumerLoop.is_ready`
true (with ``unready_after_s`` above 0 it follows the broker, checked every ``health_interval_s``
when idle); :meth:`TaskConsumerLoop.is_alive` is false when only a restart helps (fenced, or the
loop stuck past ``stuck_after_s``), and the seconds since the broker last answered are a metric.
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
import uuid
from dataclasses import replace

from opentelemetry import trace

from shared.errors import MessageError, ProduceError, ProducerFenced, RebalanceStalled
from shared.kafka.batch import plan_batch
from shared.kafka.dlq import dead_letter
from shared.kafka.error_policy import (ProcessingErrorCallback, ProduceErrorCallback, default_on_processing_error,
                                       default_on_produce_error)
from shared.kafka.outgoing import OutgoingRecord
from shared.kafka.poison import Undecodable, is_decode_error, locate_undecodable, salvage
from shared.kafka.shadow import own_records
from shared.kafka.topics import TaskTopics, ensure_topics
from shared.settings import KafkaSettings
from shared.processors import TaskProcessor
from shared.telemetry import TaskInstruments, context_from_headers, headers_with_context
from shared.telemetry.instruments import role_of

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
        on_processing_error (`ProcessingErrorCallback`, defaults to dead-lettering the request):
            for a request that fails in the model, or to decode for a reason other than its content.
        on_produce_error (`ProduceErrorCallback`, defaults to dead-lettering what is refused for
            good): for a record the producer refused; False raises :class:`ProduceError` and the
            batch is consumed again. See :mod:`shared.kafka.error_policy`.
        review_input (`bool`, defaults to `True`): review records carry the request's text and fields
            (``SLM_REVIEW_INCLUDE_INPUT``, :func:`shared.kafka.batch.review_value`).
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
        self.on_produce_error = on_produce_error
        self.review_input = review_input
        self.topics = TaskTopics.of(processor.task, settings)  # a shadow's topics and group (settings.shadow)
        self.group_id = self.topics.consumer_group(settings.group_id)
        self.instruments = TaskInstruments(processor.task, getattr(processor, "model_id", "unknown"),
                                           role=role_of(settings.shadow))
        self._stop = threading.Event()
        self._joined_group = threading.Event()
        self._thread: threading.Thread | None = None
        self.assignment: frozenset = frozenset()
        self.assignments = 0  # completed rebalances, for tests and logs
        self.lag = 0  # records behind the end of the assigned partitions, after the last poll
        self.partition_lag: dict[tuple[str, int], int] = {}  # the same, per (topic, partition)
        self._rebalancing_since: float | None = None
        self._clock = time.monotonic
        self._consumer = None
        self._finished: dict = {}  # TopicPartition -> OffsetAndMetadata of the last finished batch
        self._last_contact: float | None = None  # monotonic time the broker last answered the loop
        self._started_at: float | None = None
        self._last_check = float("-inf")
        self._outage_reported = False
        self.undecodable = 0  # records dead-lettered because the client could not decode them
        self.transactional_id = settings.transactional_id_for(self.group_id)
        if settings.exactly_once and self.transactional_id is None:
            # Unique per process: nothing fences a crashed predecessor, whose open transaction then
            # holds read_committed readers back until transaction_timeout_ms.
            self.transactional_id = f"{self.group_id}-{uuid.uuid4().hex[:12]}"
            logger.warning('exactly_once without group_instance_id or transactional_id task=%s: using '
                           'transactional_id=%s; a crash leaves its open transaction until transaction_timeout_ms',
                           processor.task, self.transactional_id)
        self.fenced = False  # a newer instance took this one's transactional id: the loop stopped
        self._last_iteration: float | None = None  # monotonic time the poll loop last came round
        self.instruments.observe_loop(self)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._started_at = self._clock()
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
        """Whether the service should receive REST traffic, as far as Kafka is concerned.

        With ``unready_after_s`` 0 (the default), while the loop runs: a broker outage or a slow
        group join takes Kafka's work away, not REST's, so the pod stays in its Service (Kafka's
        health is :meth:`seconds_since_contact`, a metric and a log line). Above 0, also only once
        the group is joined and the broker reached within that many seconds.
        """
        if not self.settings.unready_after_s:
            return self.running
        return self.running and self._joined_group.is_set() and self.broker_reachable()

    def is_alive(self) -> bool:
        """False when only a restart helps: the loop stopped on its own (fenced), or has not come
        round its poll loop for ``stuck_after_s`` (stuck in a call). A broker outage is not that:
        the loop goes on polling, and reconnects when the broker is back."""
        if self._stop.is_set():
            return True  # stopping on purpose
        if not self.running:
            return self._thread is None  # never started: nothing to restart
        last = self._last_iteration
        return last is None or self._clock() - last <= self.settings.stuck_after_s

    def seconds_since_contact(self) -> float | None:
        """Seconds since the broker last answered the loop; None before the first answer."""
        last = self._last_contact
        return None if last is None else self._clock() - last

    def seconds_silent(self) -> float | None:
        """Seconds since the broker last answered the loop or, before its first answer, since the
        loop started (a broker down from the start is silence too); None before the start."""
        last = self._last_contact if self._last_contact is not None else self._started_at
        return None if last is None else self._clock() - last

    def broker_reachable(self) -> bool:
        """Whether the broker answered the loop within the last ``unready_after_s``."""
        if not self.settings.unready_after_s:
            return True
        last = self._last_contact
        return last is not None and self._clock() - last <= self.settings.unready_after_s

    def _contact(self) -> None:
        if self._outage_reported or (self._last_contact is not None and not self.broker_reachable()):
            logger.warning('broker reachable again task=%s', self.processor.task)
        self._outage_reported = False
        self._last_contact = self._clock()

    def wait_ready(self, timeout: float) -> bool:
        return self._joined_group.wait(timeout)

    # -- the loop -------------------------------------------------------------------------

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
                self._last_iteration = self._clock()
                logger.exception('consumer loop failed task=%s; restarting in %.0fs', self.processor.task, RETRY_BACKOFF_S)
                self._joined_group.clear()
                self._rebalancing_since = None
                self._stop.wait(RETRY_BACKOFF_S)

    def _on_partitions_revoked(self, revoked) -> dict:
        """Bookkeeping of a revocation; returns the finished offsets of ``revoked`` to commit.

        No batch is in hand (batches are finished between polls), but their asynchronous commits
        may still be in flight or lost, so the listener commits these again and waits.
        """
        self._rebalancing_since = self._clock()
        logger.info('partitions revoked task=%s partitions=%s', self.processor.task, _names(revoked))
        return self._take_finished(set(revoked))

    def _on_partitions_lost(self, lost) -> None:
        """Partitions taken away by the coordinator (session expired): another member may own
        them already, so nothing is committed; their finished batches are read again there."""
        self._rebalancing_since = self._clock()
        dropped = self._take_finished(set(lost))
        logger.warning('partitions lost task=%s partitions=%s uncommitted=%s', self.processor.task, _names(lost),
                       _names(dropped))

    async def _commit_revoked(self, offsets: dict) -> None:
        """Commit ``offsets`` from the rebalance listener, on kafka-python's IO thread, and wait.

        ``commit()`` would block that thread on itself; ``commit_async`` returns a future the
        same thread completes, which the (asynchronous) listener awaits: the group does not
        move on until the commit is answered. Bounded by the client's ``request_timeout_ms``.
        """
        if not offsets or self._consumer is None:
            return
        try:
            # With the coordinator unknown, kafka-python's future is only its lookup, the commit
            # chained after it; the second call is then the commit itself. When the first was
            # already the commit, the second commits the same offsets again, which is harmless.
            await self._consumer.commit_async(offsets, callback=self._on_commit)
            await self._consumer.commit_async(offsets, callback=self._on_commit)
        except Exception as exc:  # noqa: BLE001 - the next owner re-reads from the last commit: at least once
            logger.warning('commit of finished offsets failed task=%s partitions=%s error="%s"', self.processor.task,
                           _names(offsets), exc)
            return
        self._contact()
        logger.info('committed at revocation task=%s offsets=%s', self.processor.task, _offsets(offsets))

    def _take_finished(self, partitions: set | None = None) -> dict:
        """Remove and return the finished offsets of ``partitions`` (or all)."""
        offsets = {tp: om for tp, om in self._finished.items() if partitions is None or tp in partitions}
        for tp in offsets:
            self._finished.pop(tp, None)
        return offsets

    def _commit_finished(self, partitions: set | None = None) -> None:
        """Commit the finished batches' offsets synchronously, from the loop's own thread."""
        offsets = self._take_finished(partitions)
        if not offsets or self._consumer is None:
            return
        try:
            self._consumer.commit(offsets, timeout_ms=COMMIT_TIMEOUT_MS)
        except Exception as exc:  # noqa: BLE001 - the next owner re-reads from the last commit: at least once
            logger.warning('commit of finished offsets failed task=%s partitions=%s error="%s"', self.processor.task,
                           _names(offsets), exc)

    def _on_commit(self, offsets, response) -> None:
        if not isinstance(response, Exception):
            self._contact()
        else:
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
        from kafka import AsyncConsumerRebalanceListener, KafkaConsumer, KafkaProducer

        loop = self

        # Asynchronous: kafka-python awaits these on its IO thread, where a blocking call fails.
        class Listener(AsyncConsumerRebalanceListener):
            async def on_partitions_revoked(self, revoked):
                await loop._commit_revoked(loop._on_partitions_revoked(revoked))

            async def on_partitions_assigned(self, assigned):
                loop._on_partitions_assigned(assigned)

            async def on_partitions_lost(self, lost):
                loop._on_partitions_lost(lost)

        options = self.settings.client_options()
        consumer = KafkaConsumer(
            **options,
            **self.settings.group_options(),
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset=self.settings.auto_offset_reset,
            max_poll_records=self.settings.max_batch,
            isolation_level=self._isolation_level,
        )
        producer = None
        try:
            consumer.subscribe([self.topics.requests], listener=Listener())
            self._wait_for_topic_metadata(consumer)
            transactional = {}
            if self.transactional_id:
                transactional = {"transactional_id": self.transactional_id,
                                 "transaction_timeout_ms": self.settings.transaction_timeout_ms}
            producer = KafkaProducer(**options, acks="all", enable_idempotence=True, linger_ms=2, **transactional)
            if self.transactional_id:
                # Fences an earlier producer under this id and aborts the transaction it left open.
                self._fenced_if(producer.init_transactions)
                logger.info('transactions initialised task=%s transactional_id=%s', self.processor.task,
                            self.transactional_id)
        except BaseException:
            if producer is not None:
                producer.close(timeout=5)
            consumer.close(autocommit=False)
            raise
        return consumer, producer

    @property
    def _isolation_level(self) -> str:
        return "read_committed" if self.settings.exactly_once else "read_uncommitted"

    def _fenced_if(self, call, *args):
        """Run a transactional call; a fenced producer (another instance under this transactional id,
        or this static member replaced) raises :class:`ProducerFenced`, which ends the loop."""
        from kafka.errors import KafkaError

        try:
            return call(*args)
        except KafkaError as exc:
            name = type(exc).__name__
            if "Fenced" in name or "InvalidProducerEpoch" in name:
                raise ProducerFenced(f"fenced by a newer instance (transactional_id={self.transactional_id}, "
                                     f"{name}); it owns this work now") from exc
            raise

    def _begin_batch(self, producer) -> None:
        if self.transactional_id:
            self._fenced_if(producer.begin_transaction)

    def _commit_batch(self, consumer, producer, offsets: dict) -> None:
        """Commit a finished batch: its offsets in the transaction (exactly once), or
        asynchronously after its records were acknowledged (at least once)."""
        if self.transactional_id:
            self._fenced_if(producer.send_offsets_to_transaction, offsets, consumer.group_metadata())
            self._fenced_if(producer.commit_transaction)
            self._contact()
            return
        self._finished.update(offsets)
        consumer.commit_async(offsets, callback=self._on_commit)

    def _abort_batch(self, producer, exc: BaseException) -> None:
        """Abort the batch's transaction after *exc*; the batch is then consumed again."""
        if not self.transactional_id or isinstance(exc, ProducerFenced):
            return
        try:
            producer.abort_transaction()
            logger.warning('transaction aborted task=%s error="%s: %s"; the batch is consumed again',
                           self.processor.task, type(exc).__name__, exc)
        except Exception as abort_exc:  # noqa: BLE001 - the clients are rebuilt; the broker aborts it then
            logger.warning('abort failed task=%s error="%s"; the next instance under transactional_id=%s aborts '
                           'the transaction', self.processor.task, abort_exc, self.transactional_id)

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
        self._last_iteration = self._clock()
        consumer, producer = self._clients()
        self._consumer, self._finished = consumer, {}
        self._contact()
        logger.info('consumer loop started task=%s group=%s member=%s topic=%s', self.processor.task, self.group_id,
                    self.settings.group_instance_id or "dynamic", self.topics.requests)
        try:
            while not self._stop.is_set():
                self._last_iteration = self._clock()
                try:
                    polled = consumer.poll(timeout_ms=self.settings.poll_timeout_ms,
                                           max_records=self.settings.max_batch)
                except Exception as exc:
                    if getattr(exc, "retriable", False):
                        self._wait_for_broker(exc)  # the clients reconnect by themselves: keep them
                        continue
                    if not is_decode_error(exc) or not self._skip_undecodable(consumer, producer, exc):
                        raise
                    continue
                records = [record for batch in polled.values() for record in batch]
                if records:
                    self._handle(consumer, producer, records)
                else:
                    self._check_broker(consumer)
                self.partition_lag = _lag(consumer)
                self.lag = sum(self.partition_lag.values())
                self._check_rebalance()
        finally:
            self._commit_finished()
            producer.close(timeout=10)
            consumer.close(autocommit=False)
            self._consumer = None
            if self._stop.is_set():
                self._leave_group()
            logger.info('consumer loop stopped task=%s', self.processor.task)

    def _wait_for_broker(self, exc: BaseException) -> None:
        """A retriable failure of ``poll`` (broker or coordinator unreachable): keep the clients,
        which reconnect within ``reconnect_backoff_max_ms`` once the broker is back. Rebuilding
        them would wait out the admin client's and the consumer's bootstrap timeouts instead.
        Readiness drops once the broker has been out of reach for ``unready_after_s``."""
        self._report_outage(exc)
        self._check_rebalance()
        self._stop.wait(min(1.0, self.settings.poll_timeout_ms / 1000))

    def _report_outage(self, exc: BaseException) -> None:
        """One log line per outage (the first failure), however long it lasts."""
        if not self._outage_reported:
            self._outage_reported = True
            logger.warning('broker unreachable task=%s error="%s: %s"', self.processor.task, type(exc).__name__, exc)

    def _check_broker(self, consumer) -> None:
        """Every ``health_interval_s`` while idle: one bounded round trip to the broker (the end
        offsets of the assignment, or of partition 0), so readiness knows whether it is there."""
        from kafka import TopicPartition

        now = self._clock()
        if now - self._last_check < self.settings.health_interval_s:
            return
        self._last_check = now
        partitions = list(consumer.assignment()) or [TopicPartition(self.topics.requests, 0)]
        timeout_ms = int(min(self.settings.health_interval_s, 5.0) * 1000)
        try:
            consumer.end_offsets(partitions, timeout_ms=timeout_ms)
        except Exception as exc:  # noqa: BLE001 - reported through readiness and this line
            self._report_outage(exc)
            return
        self._contact()

    def _leave_group(self) -> None:
        """A static member never leaves its group on close (KIP-345); on a graceful stop it is
        removed explicitly, so its partitions move to the other members at once."""
        if not (self.settings.group_instance_id and self.settings.leave_group_on_stop):
            return
        from kafka import KafkaAdminClient
        from kafka.admin import MemberToRemove

        admin = None
        try:
            admin = KafkaAdminClient(**self.settings.client_options(), request_timeout_ms=5_000)
            admin.remove_group_members(self.group_id, [MemberToRemove(
                group_instance_id=self.settings.group_instance_id, reason="graceful stop")])
            logger.info('left group task=%s group=%s member=%s', self.processor.task, self.group_id,
                        self.settings.group_instance_id)
        except Exception as exc:  # noqa: BLE001 - the session timeout frees the partitions instead
            logger.warning('could not leave group task=%s group=%s member=%s error="%s"', self.processor.task,
                           self.group_id, self.settings.group_instance_id, exc)
        finally:
            if admin is not None:
                admin.close()

    def _probe_consumer(self, check_crcs: bool = True):
        from kafka import KafkaConsumer

        return KafkaConsumer(**self.settings.client_options(), group_id=None, enable_auto_commit=False,
                             check_crcs=check_crcs, isolation_level=self._isolation_level)

    def _skip_undecodable(self, consumer, producer, exc: BaseException) -> bool:
        """Dead-letter the records ``poll`` could not decode and seek past them.

        Returns False when no assigned partition holds an unreadable record (the failure was
        something else; the caller re-raises it).
        """
        from kafka.structs import OffsetAndMetadata

        assigned = list(consumer.assignment())
        if not assigned:
            return False
        positions = {tp: consumer.position(tp, timeout_ms=5_000) for tp in assigned}
        ends = consumer.end_offsets(assigned, timeout_ms=5_000)
        found = locate_undecodable(self._probe_consumer, positions, ends)
        if found is None:
            logger.warning('poll failed task=%s error="%s: %s" and every partition reads; restarting the clients',
                           self.processor.task, type(exc).__name__, exc)
            return False
        outgoing = self._undecodable_records(found)
        started = time.perf_counter()
        self._begin_batch(producer)
        try:
            self._produce(producer, outgoing)
            self._commit_batch(consumer, producer, {found.partition: OffsetAndMetadata(found.end, "", -1)})
        except BaseException as exc:
            self._abort_batch(producer, exc)
            raise
        consumer.seek(found.partition, found.end)
        self.undecodable += len(outgoing)
        self.instruments.record_batch(polled=len(outgoing), results=0, review=0,
                                      dlq_types={"undecodable": len(outgoing)},
                                      latency_ms=(time.perf_counter() - started) * 1000, path="kafka")
        logger.warning('undecodable records task=%s partition=%s offsets=%d-%d dlq=%d error="%s"', self.processor.task,
                       _names([found.partition]), found.first, found.end - 1, len(outgoing), found.error)
        return True

    def _undecodable_records(self, found: Undecodable) -> list[OutgoingRecord]:
        """One DLQ record per unreadable offset: the original key, value and headers where they can
        be read without the checksum check, else only the pointer (``source.*``) and the error."""
        tp = found.partition
        salvager = self._probe_consumer(check_crcs=False)
        try:
            salvaged = salvage(salvager, tp, found.first, found.end)
        finally:
            salvager.close(autocommit=False)
        error = MessageError("undecodable", f"the client could not decode the record: {found.error}")
        outgoing = []
        for offset in range(found.first, found.end):
            record = salvaged.get(offset)
            outgoing.append(dead_letter(self.topics.dlq, (tp.topic, tp.partition, offset), error,
                                        key=getattr(record, "key", None), value=getattr(record, "value", None),
                                        headers=getattr(record, "headers", None),
                                        max_value_bytes=self.settings.dlq_max_value_bytes))
        return outgoing

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
            started_ns = time.time_ns()
            plan = plan_batch(records, self.processor, self.topics, self.settings.max_message_bytes,
                              self.settings.dlq_max_value_bytes, self.on_processing_error, self.review_input)
            plan.outgoing[:] = self._traced_answers(plan.outgoing, span, started_ns)
            last: dict = {}
            for record in records:
                tp = TopicPartition(record.topic, record.partition)
                last[tp] = max(last.get(tp, -1), record.offset)
            finished = {tp: OffsetAndMetadata(offset + 1, "", -1) for tp, offset in last.items()}
            self._begin_batch(producer)
            try:
                self._produce(producer, plan.outgoing, plan)
                self._contact()
                self._commit_batch(consumer, producer, finished)
            except BaseException as exc:
                self._abort_batch(producer, exc)
                raise
            latency_ms = (time.perf_counter() - started) * 1000
            span.set_attributes({"slm.results": plan.results, "slm.review": plan.review, "slm.dlq": plan.dlq})
        self.instruments.record_batch(polled=len(records), results=plan.results, review=plan.review,
                                      dlq_types=plan.dlq_types, latency_ms=latency_ms, path="kafka")
        self.instruments.record_latencies(_since_produced(records, plan.outgoing, self.topics.dlq), path="kafka")
        logger.info('batch task=%s records=%d results=%d review=%d dlq=%d dlq_types="%s" latency_ms=%.1f',
                    self.processor.task, len(records), plan.results, plan.review, plan.dlq,
                    ",".join(f"{k}:{v}" for k, v in sorted(plan.dlq_types.items())), latency_ms)

    def _traced_answers(self, outgoing: list[OutgoingRecord], batch_span, started_ns: int) -> list[OutgoingRecord]:
        """One span per answered request, the child of the caller's span (or of the batch span when
        the request carried none) and linked to the batch span; the request's result and review
        records carry it as their ``traceparent``, so a trace goes on across the Kafka hop. The
        dead letters of invalid requests keep the request's own headers."""
        answer_spans: dict[tuple, object] = {}
        traced = []
        for out in outgoing:
            if out.topic not in (self.topics.results, self.topics.review):
                traced.append(out)
                continue
            if out.source not in answer_spans:
                span = tracer.start_span(
                    f"{self.processor.task} process", context=context_from_headers(out.headers),
                    kind=trace.SpanKind.CONSUMER, start_time=started_ns,
                    links=[trace.Link(batch_span.get_span_context())],
                    attributes={"messaging.system": "kafka", "messaging.destination.name": out.source[0],
                                "messaging.destination.partition.id": str(out.source[1]),
                                "messaging.kafka.offset": out.source[2]})
                span.end()
                answer_spans[out.source] = trace.set_span_in_context(span)
            traced.append(replace(out, headers=headers_with_context(out.headers, answer_spans[out.source])))
        return traced

    def _produce(self, producer, outgoing: list[OutgoingRecord], plan=None) -> None:
        """Send every record and wait for the acknowledgements.

        A record the producer refuses is handed to ``on_produce_error``. By default one refused for
        good is replaced by one DLQ record per request it came from: ``error.type=too_large`` when it
        was refused for its size, else ``unproducible``; the request's value is kept, cut to
        ``dlq_max_value_bytes`` (a refused DLQ record keeps only the pointer, ``source.*``). A request
        counts once in ``plan`` (results, review, DLQ). A failure the policy does not dead-letter (by
        default a retriable one) raises :class:`ProduceError`: the batch is not committed, the clients
        are rebuilt and the batch is consumed again from the last commit (at least once).
        """
        pending = []
        refused: list[tuple[OutgoingRecord, BaseException]] = []
        outgoing = own_records(outgoing, self.topics)  # a shadow publishes its results only
        for out in outgoing:
            try:
                pending.append((out, producer.send(out.topic, value=out.value, key=out.key, headers=out.headers)))
            except Exception as exc:  # noqa: BLE001 - synchronous refusal of this one record
                refused.append((out, exc))
        producer.flush()
        failed = [(out, future.exception) for out, future in pending if future.failed()]
        if failed and self.transactional_id:
            # A record the broker refused leaves the transaction abortable only: it is aborted and
            # the batch consumed again (synchronous refusals, such as a size over max_request_size,
            # never entered it and are dead-lettered in it as usual).
            out, exc = failed[0]
            raise ProduceError(f"{out.topic}: {exc} (in a transaction: aborted)")
        refused += failed
        for out, exc in refused:
            if not self.on_produce_error(exc, out, logger):
                raise ProduceError(f"{out.topic}: {exc}")
        if not refused:
            return
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
                                                headers=out.headers, max_value_bytes=self.settings.dlq_max_value_bytes)
            if plan is not None and out.source not in dead:
                plan.count_dlq(error_type)
            logger.error('unproducible record task=%s topic=%s source=%s error="%s: %s"', self.processor.task,
                         out.topic, out.source, type(exc).__name__, exc)
        sent = [producer.send(f.topic, value=f.value, key=f.key, headers=f.headers)
                for f in own_records(list(fallbacks.values()), self.topics)]
        producer.flush()
        if any(f.failed() for f in sent):
            raise ProduceError("could not publish the DLQ record of an unproducible result")


def _too_large(exc: BaseException) -> bool:
    """Refused for its size: kafka-python's MessageSizeTooLargeError, locally or from the broker."""
    return "TooLarge" in type(exc).__name__ or "too large" in str(exc).lower()


def _offsets(offsets: dict) -> str:
    return ",".join(sorted(f"{tp.topic}[{tp.partition}]={om.offset}" for tp, om in offsets.items())) or "none"


def _since_produced(records, outgoing: list[OutgoingRecord], dlq_topic: str) -> list[float]:
    """Milliseconds from each answered record's timestamp (its producer's clock, or the broker's
    for LogAppendTime topics) to now, when its answer is committed: the end-to-end latency."""
    answered = {out.source for out in outgoing if out.topic != dlq_topic}
    now_ms = time.time() * 1000
    stamps = [(getattr(record, "timestamp", None) or 0) if (record.topic, record.partition, record.offset) in answered
              else 0 for record in records]
    return [max(0.0, now_ms - stamp) for stamp in stamps if stamp > 0]


def _lag(consumer) -> dict[tuple[str, int], int]:
    """Records between the position and the high watermark, per partition of the assignment.

    Only partitions with a known high watermark (it arrives with the first fetch) and a position
    known without asking the broker count: during an outage ``position()`` waits for a metadata
    refresh to validate the offset and fails, which must not take the loop down.
    """
    behind = {}
    for tp in consumer.assignment():
        high = consumer.highwater(tp)
        if high is None:
            continue
        try:
            position = consumer.position(tp, timeout_ms=0)
        except Exception:  # noqa: BLE001 - unknown for now; counted again once the broker answers
            continue
        if position is not None:
            behind[(tp.topic, tp.partition)] = max(0, high - position)
    return behind


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
