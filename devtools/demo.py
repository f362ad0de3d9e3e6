"""``slm demo``: the four task services on a local broker, fed their test sets through Kafka.

Streams every test row of each task to ``<task>.requests`` (plus a few malformed records
per task, to show the DLQ), reads ``<task>.results`` and ``<task>.dlq`` as they arrive,
and shows one live line per task: progress, throughput and the running quality of the
streamed results against the labels (accuracy, or entity F1 for entities).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from pipelines.labelled_rows import load_rows
from shared.kafka.clients import client_options
from shared.task_kinds import kind_of_task

__all__ = ["DemoSummary", "run_demo", "stream_test_sets"]

logger = logging.getLogger(__name__)

MALFORMED = [b"this is not json", b"\xff\xfe\x00", b'{"id": "no-text"}', b'{"text": "   "}']


@dataclass
class DemoSummary:
    """What one task's stream gave: counts, quality against the labels, time."""

    task: str
    sent: int
    results: int = 0
    review: int = 0
    dlq: int = 0
    seconds: float = 0.0
    # right, predicted, gold: items for classification, entities for entities
    counts: list[int] = field(default_factory=lambda: [0, 0, 0])

    @property
    def metric(self) -> str:
        return kind_of_task(self.task).quality_metric

    @property
    def quality(self) -> float:
        """Accuracy (one prediction and one gold answer per item), or entity F1."""
        right, predicted, gold = self.counts
        return 2 * right / (predicted + gold) if predicted + gold else 0.0

    def add(self, result: dict, gold) -> None:
        self.results += 1
        self.review += bool(result["review"])
        for i, count in enumerate(kind_of_task(self.task).result_counts(result, gold)):
            self.counts[i] += count

    def lines(self) -> list[str]:
        rate = self.results / max(self.seconds, 1e-9)
        name = {"f1": "entity F1"}.get(self.metric, self.metric)
        return [
            f"task            {self.task}",
            f"requests sent   {self.sent} (+{len(MALFORMED)} malformed)",
            f"results         {self.results} in {self.seconds:.1f}s ({rate:.0f} msg/s)",
            f"{name:<16}{self.quality:.4f} against the labels",
            f"sent to review  {self.review}",
            f"dead letters    {self.dlq} (expected {len(MALFORMED)})",
        ]


def stream_test_sets(bootstrap: str, tasks: list[str], limit: int | None, timeout: float = 900) -> list[DemoSummary]:
    """Produce each task's test set (and the malformed records) and tally its results live."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    from shared.kafka import TaskTopics

    run = uuid.uuid4().hex[:8]
    topics = {task: TaskTopics(task) for task in tasks}
    by_topic = {t: task for task, tt in topics.items() for t in (tt.results, tt.dlq)}
    golds: dict[str, tuple[str, object]] = {}
    summaries: dict[str, DemoSummary] = {}
    outgoing = []
    for task in tasks:
        requests, gold, _ = load_rows(task, limit)
        summaries[task] = DemoSummary(task, len(requests))
        for i, (value, answer) in enumerate(zip(requests, gold)):
            key = f"demo-{run}-{task}-{i}"
            golds[key] = (task, answer)
            outgoing.append((topics[task].requests, key, json.dumps({"id": key, **value}).encode()))
        outgoing.extend((topics[task].requests, f"demo-{run}-bad", bad) for bad in MALFORMED)
    # Read results and DLQs from their current ends, so earlier runs' records are not counted.
    consumer = KafkaConsumer(**client_options(bootstrap), enable_auto_commit=False, group_id=None)
    partitions = [TopicPartition(t, p) for t in by_topic for p in (consumer.partitions_for_topic(t) or {0})]
    consumer.assign(partitions)
    consumer.seek_to_end()
    for tp in partitions:
        consumer.position(tp)
    # Interleave the tasks so every service works from the first second.
    outgoing.sort(key=lambda item: hash(item[1]) % 1000)
    producer = KafkaProducer(**client_options(bootstrap), acks="all", linger_ms=5)
    started = time.perf_counter()
    for topic, key, value in outgoing:
        producer.send(topic, key=key.encode(), value=value, headers=[("correlation-id", f"demo-{run}".encode())])
    producer.flush()
    producer.close()

    seen: set[str] = set()
    bars = {task: tqdm(total=s.sent, desc=f"{task:<12}", unit="msg", position=i)
            for i, (task, s) in enumerate(summaries.items())}
    deadline = time.monotonic() + timeout

    def done() -> bool:
        return len(seen) == len(golds) and all(s.dlq >= len(MALFORMED) for s in summaries.values())

    try:
        while not done() and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=500).items():
                task = by_topic[tp.topic]
                summary = summaries[task]
                for record in records:
                    if tp.topic == topics[task].dlq:
                        summary.dlq += record.key == f"demo-{run}-bad".encode()
                        continue
                    result = json.loads(record.value)
                    if result["id"] not in golds or result["id"] in seen:
                        continue
                    seen.add(result["id"])
                    summary.add(result, golds[result["id"]][1])
                    if summary.results == summary.sent:
                        summary.seconds = time.perf_counter() - started
                    bars[task].update()
            elapsed = time.perf_counter() - started
            for task, summary in summaries.items():
                rate = summary.results / (summary.seconds or elapsed)  # frozen once the task is done
                bars[task].set_postfix({"msg_s": f"{rate:.0f}", summary.metric: f"{summary.quality:.3f}",
                                        "review": summary.review, "dlq": summary.dlq})
    finally:
        for bar in bars.values():
            bar.close()
        consumer.close()
    for summary in summaries.values():
        summary.seconds = summary.seconds or time.perf_counter() - started
    return list(summaries.values())


def run_demo(tasks: list[str], broker, serving, *, limit: int | None, keep_running: bool):
    """Broker and services up (the release models), stream, summarise, clean up.

    ``broker`` (:class:`devtools.local_kafka.BrokerConfig`) and ``serving``
    (:class:`shared.settings.ServingSettings`): as :func:`devtools.stack.up` takes them.
    """
    from devtools import stack

    bootstrap, services = stack.up(tasks, broker, serving)
    try:
        summaries = stream_test_sets(bootstrap, tasks, limit)
    except BaseException:
        keep_running = False  # a failed or interrupted demo leaves nothing behind
        raise
    finally:
        if not keep_running:
            stack.down(broker, services)
    return summaries, services
