"""Where a consumer loop commits: each finished batch, at least once or exactly once.

At least once (the default): a batch is committed only after every record it produced (results,
review copies, DLQ records) is acknowledged by the broker, and asynchronously: a synchronous
commit held the loop for 8 ms of a 34 ms cycle at half load. The offsets of the finished batches
are kept in a ledger until partitions are revoked or the clients close, when they are committed
again and waited for, so a rebalance or a stop never hands over a partition with finished but
uncommitted work. On revocation that commit runs in the rebalance listener, on kafka-python's IO
thread, where a blocking ``commit()`` fails ("Cannot block on net.run() from the IO thread
itself"): :meth:`Checkpoint.commit_revoked` awaits ``commit_async``'s future, which that thread
completes. Before the clients close, the loop's own thread commits synchronously.

Exactly once (``delivery="exactly_once"``): each micro-batch is one Kafka transaction holding its
results, review copies and DLQ records and the batch's consumed offsets (committed through the
producer with the consumer's group metadata, KIP-447); requests are read ``read_committed``. Any
failure aborts the transaction and the batch is consumed again from the last committed offsets,
so a reader with ``isolation_level=read_committed`` sees each answer once. The transactional id
is stable per pod or replica (from ``group_instance_id``): a restarted instance fences its
predecessor and aborts what it left open. A transaction is begun and committed between two polls
(the next batch may be in the model meanwhile, but nothing of it is sent), so none is open when
partitions are revoked. An instance that finds itself fenced (a newer
one runs under its id) raises :class:`ProducerFenced`, and the loop stops consuming.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from shared.errors import ProducerFenced
from shared.kafka.consumer import partition_names
from shared.kafka.settings import KafkaSettings

__all__ = ["COMMIT_TIMEOUT_MS", "Checkpoint", "commit_offsets", "offsets_after", "transactional_id_of"]

logger = logging.getLogger(__name__)

# A synchronous commit (revocation, close) gives up after this: a broker that is down must not
# hold the loop; the next owner then re-reads from the last commit (at least once).
COMMIT_TIMEOUT_MS = 10_000


def transactional_id_of(settings: KafkaSettings, group_id: str, task: str) -> str | None:
    """The producer's transactional id: the settings' (stable per pod or replica), a unique one
    for exactly-once delivery without them, else None (at least once, no transactions)."""
    transactional_id = settings.transactional_id_for(group_id)
    if settings.exactly_once and transactional_id is None:
        # Unique per process: nothing fences a crashed predecessor, whose open transaction then
        # holds read_committed readers back until transaction_timeout_ms.
        transactional_id = f"{group_id}-{uuid.uuid4().hex[:12]}"
        logger.warning('exactly_once without group_instance_id or transactional_id task=%s: using '
                       'transactional_id=%s; a crash leaves its open transaction until transaction_timeout_ms',
                       task, transactional_id)
    return transactional_id


def commit_offsets(next_offsets: dict) -> dict:
    """``{TopicPartition: next offset to read}`` as a commit takes it (``OffsetAndMetadata``)."""
    from kafka.structs import OffsetAndMetadata

    return {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in next_offsets.items()}


def offsets_after(records: Iterable) -> dict:
    """The offsets to commit once ``records`` are finished: one past the last, per partition."""
    from kafka import TopicPartition

    last: dict = {}
    for record in records:
        tp = TopicPartition(record.topic, record.partition)
        last[tp] = max(last.get(tp, -1), record.offset)
    return commit_offsets({tp: offset + 1 for tp, offset in last.items()})


class Checkpoint:
    """Commits the loop's finished batches, and keeps the ledger of their offsets.

    One per loop; :meth:`attach` gives it each new consumer, through which the rebalance listener
    and the close commit.

    Args:
        transactional_id (`str | None`): the producer's (:func:`transactional_id_of`); None is
            at-least-once delivery.
        task (`str`): the task, for log lines.
        on_contact (`Callable[[], None]`): called when the broker answered a commit.
    """

    def __init__(self, transactional_id: str | None, task: str, on_contact: Callable[[], None]) -> None:
        self.transactional_id = transactional_id
        self.task = task
        self.on_contact = on_contact
        self.consumer = None
        self._finished: dict = {}  # TopicPartition -> OffsetAndMetadata of the last finished batch

    def attach(self, consumer) -> None:
        """Commit through ``consumer`` from now on; a new consumer starts with an empty ledger (the
        last one's finished offsets were committed before it closed, or are read again)."""
        self.consumer, self._finished = consumer, {}

    def detach(self) -> None:
        self.consumer = None

    # -- transactions (exactly once) --------------------------------------------------------

    def init_transactions(self, producer) -> None:
        """Fence an earlier producer under this transactional id and abort what it left open."""
        if not self.transactional_id:
            return
        self._fenced_if(producer.init_transactions)
        logger.info('transactions initialised task=%s transactional_id=%s', self.task, self.transactional_id)

    @contextmanager
    def batch(self, producer) -> Iterator[None]:
        """The scope of one batch's sends and commit: a transaction with exactly-once delivery,
        aborted when the block raises (the exception goes on, and the batch is consumed again);
        a plain block at least once."""
        if self.transactional_id:
            self._fenced_if(producer.begin_transaction)
        try:
            yield
        except BaseException as exc:
            self._abort(producer, exc)
            raise

    def commit(self, consumer, producer, offsets: dict) -> None:
        """Commit a finished batch: its offsets in the transaction (exactly once), or
        asynchronously after its records were acknowledged (at least once)."""
        if self.transactional_id:
            self._fenced_if(producer.send_offsets_to_transaction, offsets, consumer.group_metadata())
            self._fenced_if(producer.commit_transaction)
            self.on_contact()
            return
        self._finished.update(offsets)
        consumer.commit_async(offsets, callback=self._on_commit)

    def _abort(self, producer, exc: BaseException) -> None:
        """Abort the batch's transaction after *exc*; the batch is then consumed again."""
        if not self.transactional_id or isinstance(exc, ProducerFenced):
            return  # nothing open; or a fenced producer can no longer abort (its successor did)
        try:
            producer.abort_transaction()
            logger.warning('transaction aborted task=%s error="%s: %s"; the batch is consumed again',
                           self.task, type(exc).__name__, exc)
        except Exception as abort_exc:  # noqa: BLE001 - the clients are rebuilt; the broker aborts it then
            logger.warning('abort failed task=%s error="%s"; the next instance under transactional_id=%s aborts '
                           'the transaction', self.task, abort_exc, self.transactional_id)

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

    # -- the ledger of finished offsets (at least once) -------------------------------------

    def take_finished(self, partitions: set | None = None) -> dict:
        """Remove and return the finished offsets of ``partitions`` (or all)."""
        offsets = {tp: om for tp, om in self._finished.items() if partitions is None or tp in partitions}
        for tp in offsets:
            self._finished.pop(tp, None)
        return offsets

    async def commit_revoked(self, offsets: dict) -> None:
        """Commit ``offsets`` from the rebalance listener, on kafka-python's IO thread, and wait.

        No batch is being sent (sends and commits happen between polls; the records of a batch
        still in the model are abandoned by the loop, never committed), but the finished batches'
        asynchronous commits may still be in flight or lost, so they are committed again here. ``commit()`` would block
        that thread on itself; ``commit_async`` returns a future the same thread completes, which
        the (asynchronous) listener awaits: the group does not move on until the commit is
        answered. Bounded by the client's ``request_timeout_ms``.
        """
        if not offsets or self.consumer is None:
            return
        try:
            # With the coordinator unknown, kafka-python's future is only its lookup, the commit
            # chained after it; the second call is then the commit itself. When the first was
            # already the commit, the second commits the same offsets again, which is harmless.
            await self.consumer.commit_async(offsets, callback=self._on_commit)
            await self.consumer.commit_async(offsets, callback=self._on_commit)
        except Exception as exc:  # noqa: BLE001 - the next owner re-reads from the last commit: at least once
            logger.warning('commit of finished offsets failed task=%s partitions=%s error="%s"', self.task,
                           partition_names(offsets), exc)
            return
        self.on_contact()
        logger.info('committed at revocation task=%s offsets=%s', self.task, _offset_names(offsets))

    def commit_finished(self, partitions: set | None = None) -> None:
        """Commit the finished batches' offsets synchronously, from the loop's own thread."""
        offsets = self.take_finished(partitions)
        if not offsets or self.consumer is None:
            return
        try:
            self.consumer.commit(offsets, timeout_ms=COMMIT_TIMEOUT_MS)
        except Exception as exc:  # noqa: BLE001 - the next owner re-reads from the last commit: at least once
            logger.warning('commit of finished offsets failed task=%s partitions=%s error="%s"', self.task,
                           partition_names(offsets), exc)

    def _on_commit(self, offsets, response) -> None:
        if not isinstance(response, Exception):
            self.on_contact()
        else:
            logger.warning('asynchronous commit failed task=%s partitions=%s error="%s" (committed again with '
                           'the next batch or at revocation)', self.task, partition_names(offsets), response)


def _offset_names(offsets: dict) -> str:
    return ",".join(sorted(f"{tp.topic}[{tp.partition}]={om.offset}" for tp, om in offsets.items())) or "none"
