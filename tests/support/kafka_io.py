"""Producing to and draining topics of the real test broker."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from kafka import KafkaConsumer, KafkaProducer

from shared.kafka.groups import group_members

__all__ = ["RawHeaderKey", "committed_offsets", "committed_total", "drain", "group_members", "private_broker", "produce"]


class RawHeaderKey(str):
    """A header key written as the given raw bytes, which need not be UTF-8 (as ``kcat -H
    $'\\xff\\xfe=v'`` sends): kafka-python's producer encodes keys with ``str.encode``."""

    def __new__(cls, raw: bytes) -> "RawHeaderKey":
        key = super().__new__(cls, "raw-header-key")
        key.raw = raw
        return key

    def encode(self, *args, **kwargs) -> bytes:
        return self.raw


def produce(bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes | None, list]],
            **producer_options) -> int:
    """Send (key, value, headers) records and wait for every acknowledgement; ``producer_options``
    go to ``KafkaProducer`` (``compression_type``, ``max_request_size``)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **producer_options)
    futures = [producer.send(topic, key=k, value=v, headers=h) for k, v, h in records]
    producer.flush()
    for future in futures:
        future.get(timeout=30)
    producer.close()
    return len(futures)


def drain(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list], bool],
    timeout: float = 120.0,
    isolation_level: str = "read_uncommitted",
) -> list:
    """Read ``topic`` from the beginning until ``until(records)`` holds or ``timeout`` passes.

    Returns every record read; the caller asserts on it (a timeout returns what arrived).
    ``isolation_level="read_committed"`` reads as a downstream consumer of exactly-once output must.
    """
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None, isolation_level=isolation_level)
    records: list = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not until(records):
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
    finally:
        consumer.close()
    return records


def committed_offsets(bootstrap: str, group: str) -> dict:
    """The group's committed offsets by TopicPartition (partitions never committed are left out)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
    finally:
        admin.close()
    return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


def committed_total(bootstrap: str, group: str) -> int:
    """Sum of committed offsets: with offsets starting at 0, the number of records consumed."""
    return sum(committed_offsets(bootstrap, group).values())



def private_broker(data_dir):
    """The config of a broker of one test's own, on free ports, to stop and restart at will
    (the session's broker is shared); start it with ``local_kafka.up``."""
    from devtools import local_kafka

    return local_kafka.BrokerConfig.on_free_ports(data_dir)
