"""Kafka end to end: requests produced to ``<task>.requests``, results read from ``<task>.results``.

At full speed every record is produced at once and the figure is items/s to the last result;
at half speed the records are paced at 50% of that rate and the figure is the per-message
latency (the result's timestamp minus the request's).
"""

from __future__ import annotations

import json
import time
import uuid

from bench.figures import percentiles
from shared.kafka.clients import client_options

__all__ = ["measure_kafka", "stream_through_kafka"]


def stream_through_kafka(bootstrap: str, task: str, prefix: str, requests: list[dict], rate: float | None,
                         timeout: float, isolation_level: str = "read_uncommitted") -> dict:
    """Produce the requests (paced at ``rate``/s when given); items/s and per-message latency, as a
    reader with ``isolation_level`` sees them (``read_committed``: once their transaction commits)."""
    from kafka import KafkaConsumer, KafkaProducer

    from shared.kafka import TaskTopics

    topics = TaskTopics(task, prefix)
    consumer = KafkaConsumer(topics.results, **client_options(bootstrap), auto_offset_reset="latest",
                             enable_auto_commit=False, group_id=None, isolation_level=isolation_level)
    while not consumer.assignment():
        consumer.poll(timeout_ms=200)
    consumer.poll(timeout_ms=200)
    producer = KafkaProducer(**client_options(bootstrap), acks="all", linger_ms=2)
    run = uuid.uuid4().hex[:6]
    sent_at: dict[str, int] = {}
    latencies: list[float] = []
    started = time.perf_counter()
    for i, request in enumerate(requests):
        if rate:
            wait = started + i / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        rid = f"{run}-{i}"
        sent_at[rid] = int(time.time() * 1000)
        producer.send(topics.requests, key=rid.encode(), value=json.dumps({"id": rid, **request}).encode(),
                      timestamp_ms=sent_at[rid])
    producer.flush()
    deadline = time.monotonic() + timeout
    while len(latencies) < len(requests) and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            for record in batch:
                rid = json.loads(record.value)["id"]
                if rid in sent_at:
                    latencies.append(record.timestamp - sent_at.pop(rid))
    elapsed = time.perf_counter() - started
    producer.close()
    consumer.close()
    out = {"records": len(requests), "answered": len(latencies), "items_per_s": round(len(latencies) / elapsed, 1),
           **percentiles(latencies)}
    if rate:
        out["rate"] = round(rate, 1)
    return out


def measure_kafka(bootstrap: str, task: str, prefix: str, requests: list[dict], timeout: float = 600) -> dict:
    """``full_speed`` (all produced at once) and ``half_speed`` (paced at 50% of the full-speed rate)."""
    full = stream_through_kafka(bootstrap, task, prefix, requests, None, timeout)
    half = stream_through_kafka(bootstrap, task, prefix, requests, full["items_per_s"] / 2, timeout)
    return {"full_speed": full, "half_speed": half}
