"""The requests side of a consumer loop: the group consumer, its rebalance notices and its polls.

:func:`subscribe` builds the consumer of ``<task>.requests`` and joins only once the topic is in
its own metadata: a join on empty metadata is followed by a second rebalance, which kafka-python
3.0 can leave hanging. :func:`rebalance_listener` hands the group's notices to the loop.
:class:`RequestPoller` is the one place the loop asks for records, and polls ahead while the model
runs. The other helpers build the
short-lived clients around it (a probe consumer without a group, the admin client that leaves the
group) and read what the consumer knows (lag, partition names for log lines).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable

from shared.kafka.pipeline import InFlight, Revocations, abandon_revoked
from shared.kafka.settings import KafkaSettings

__all__ = ["POLL_AHEAD_SLICE_MS", "RequestPoller", "isolation_level", "leave_group", "partition_lag", "partition_names", "probe_consumer",
           "rebalance_listener", "subscribe"]

logger = logging.getLogger(__name__)

# While a batch is in the model the loop polls in slices this long, so that it hands the next batch
# over as soon as the model is done rather than at the end of a whole poll_timeout_ms.
POLL_AHEAD_SLICE_MS = 5


def isolation_level(settings: KafkaSettings) -> str:
    """``read_committed`` with exactly-once delivery: a request is read once its transaction commits."""
    return "read_committed" if settings.exactly_once else "read_uncommitted"


def rebalance_listener(on_revoked: Callable[[set], dict], commit_revoked: Callable[[dict], Awaitable[None]],
                       on_assigned: Callable[[set], None], on_lost: Callable[[set], None]):
    """The consumer's rebalance listener: ``on_revoked`` returns the finished offsets of the revoked
    partitions, and the group waits while ``commit_revoked`` commits them.

    Asynchronous: kafka-python 3 awaits the listener on its IO thread, where a blocking call
    (a synchronous ``commit()``) fails with "Cannot block on net.run() from the IO thread itself".
    """
    from kafka import AsyncConsumerRebalanceListener

    class Listener(AsyncConsumerRebalanceListener):
        async def on_partitions_revoked(self, revoked):
            await commit_revoked(on_revoked(revoked))

        async def on_partitions_assigned(self, assigned):
            on_assigned(assigned)

        async def on_partitions_lost(self, lost):
            on_lost(lost)

    return Listener()


def subscribe(settings: KafkaSettings, group_id: str, topic: str, listener, stop: threading.Event):
    """A consumer of ``topic`` in ``group_id``, subscribed with ``listener``, that has the topic's
    partitions in its metadata (or has waited 30 s for them, or was stopped). Offsets are committed
    by the loop (:mod:`shared.kafka.checkpoint`), never automatically."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        **settings.client_options(),
        **settings.group_options(),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset=settings.auto_offset_reset,
        max_poll_records=settings.max_batch,
        isolation_level=isolation_level(settings),
    )
    try:
        consumer.subscribe([topic], listener=listener)
        _wait_for_topic_metadata(consumer, topic, stop)
    except BaseException:
        consumer.close(autocommit=False)
        raise
    return consumer


def _wait_for_topic_metadata(consumer, topic: str, stop: threading.Event, timeout: float = 30.0) -> None:
    """Wait, after subscribing and before the first poll (which joins the group), until ``topic``'s
    partitions are in the consumer's metadata.

    kafka-python records the subscribed topics' partitions when it computes an assignment;
    joining before the metadata has arrived assigns against an empty snapshot, and the
    metadata that follows triggers a second rebalance at once. ``consumer.topics()`` is a
    blocking metadata fetch, so the snapshot is current when it returns.
    """
    deadline = time.monotonic() + timeout
    while not stop.is_set() and time.monotonic() < deadline:
        if topic in consumer.topics() and consumer.partitions_for_topic(topic):
            return
        stop.wait(0.2)
    logger.warning('no partition metadata for topic=%s after %.0fs; joining anyway', topic, timeout)


class RequestPoller:
    """Hands the loop its next micro-batch: at most ``max_batch`` records, in partition order.

    Polls in the caller's thread, the one that owns the consumer. While a batch is in the model,
    it polls ahead: short polls gather the next batch until the model is done. A rebalance runs
    inside these polls; the records it takes away are abandoned here (:meth:`_take_revocations`).

    Args:
        consumer: the loop's consumer.
        settings (`KafkaSettings`): ``poll_timeout_ms`` and ``max_batch``.
        revocations (`Revocations`): where the rebalance callbacks note the partitions taken away.
        stop (`threading.Event`): the loop's stop flag; polling ahead ends when it is set.
    """

    def __init__(self, consumer, settings: KafkaSettings, revocations: Revocations | None = None,
                 stop: threading.Event | None = None) -> None:
        self.consumer = consumer
        self.timeout_ms = settings.poll_timeout_ms
        self.max_batch = settings.max_batch
        self.revocations = revocations or Revocations()
        self.stop = stop or threading.Event()

    def next_batch(self, inflight: InFlight | None = None) -> list:
        """The next batch; empty when none arrived within ``poll_timeout_ms``. Raises what ``poll``
        raises (a broker away, a record the client cannot decode).

        With a batch in the model (``inflight``), polls of :data:`POLL_AHEAD_SLICE_MS` gather up to
        ``max_batch`` records until the model is done, for at most ``poll_timeout_ms``: the next
        batch is ready the moment the model is, and then the loop waits for the model, so a model
        that hangs still stops the loop coming round (liveness).
        """
        if inflight is None:
            return self._take_revocations(None, self._poll(self.timeout_ms, self.max_batch))
        deadline = time.monotonic() + self.timeout_ms / 1000
        records: list = []
        while True:
            try:
                polled = self._poll(POLL_AHEAD_SLICE_MS, self.max_batch - len(records))
            except Exception:
                if not records:
                    raise
                # These records were handed out, so the position is past them: the loop must get them.
                # The next poll fails again at the same place, and the loop handles it then.
                return records
            records = self._take_revocations(inflight, records + polled)
            if len(records) >= self.max_batch or inflight.done() or self.stop.is_set() or time.monotonic() >= deadline:
                return records

    def _poll(self, timeout_ms: int, max_records: int) -> list:
        polled = self.consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        return [record for batch in polled.values() for record in batch]

    def _take_revocations(self, inflight: InFlight | None, records: list) -> list:
        """After a poll: abandon the records in hand of the partitions a rebalance took away during it
        (:func:`~shared.kafka.pipeline.abandon_revoked`). A partition given straight back to this
        consumer (kafka-python keeps its position through an eager rebalance) is sought back to its
        first abandoned record, so nothing is skipped; one given to another member is read there from
        the last commit."""
        taken = self.revocations.take()
        if not taken:
            return records
        abandoned, records = abandon_revoked(taken, inflight, records)
        if abandoned:
            from kafka import TopicPartition

            assigned = self.consumer.assignment()
            for (topic, partition), offset in abandoned.items():
                if TopicPartition(topic, partition) in assigned:
                    self.consumer.seek(TopicPartition(topic, partition), offset)
            logger.info('abandoned at revocation offsets=%s',
                        ",".join(f"{t}[{p}]>={o}" for (t, p), o in sorted(abandoned.items())))
        return records


def partition_lag(consumer) -> dict[tuple[str, int], int]:
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


def probe_consumer(settings: KafkaSettings, check_crcs: bool = True):
    """A consumer without a group, for reading a few records by hand (:mod:`shared.kafka.poison`);
    ``check_crcs=False`` reads a batch whose checksum fails."""
    from kafka import KafkaConsumer

    return KafkaConsumer(**settings.client_options(), group_id=None, enable_auto_commit=False,
                         check_crcs=check_crcs, isolation_level=isolation_level(settings))


def leave_group(settings: KafkaSettings, group_id: str, task: str) -> None:
    """A static member never leaves its group on close (KIP-345); on a graceful stop it is
    removed explicitly, so its partitions move to the other members at once."""
    if not (settings.group_instance_id and settings.leave_group_on_stop):
        return
    from kafka import KafkaAdminClient
    from kafka.admin import MemberToRemove

    admin = None
    try:
        admin = KafkaAdminClient(**settings.client_options(), request_timeout_ms=5_000)
        admin.remove_group_members(group_id, [MemberToRemove(
            group_instance_id=settings.group_instance_id, reason="graceful stop")])
        logger.info('left group task=%s group=%s member=%s', task, group_id, settings.group_instance_id)
    except Exception as exc:  # noqa: BLE001 - the session timeout frees the partitions instead
        logger.warning('could not leave group task=%s group=%s member=%s error="%s"', task, group_id,
                       settings.group_instance_id, exc)
    finally:
        if admin is not None:
            admin.close()


def partition_names(partitions: Iterable) -> str:
    """``topic[partition]`` of each partition, sorted and comma-separated, for log lines."""
    return ",".join(sorted(f"{tp.topic}[{tp.partition}]" for tp in partitions)) or "none"
