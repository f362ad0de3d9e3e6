"""Reviewers' annotations into ``<task>.feedback`` records, as ``slm feedback export`` reads them.

Annotations arrive two ways: Label Studio's webhook (at once, but delivered once with a one-second
timeout and never retried) and a sweep of the project's tasks updated since the last one (which finds
whatever a webhook missed: the bridge was down, restarting, or Kafka refused). Both go through one thread,
so records are published in the order decided here, and the last verdict of an id is the newest annotation:

- of a task's annotations, the most recently updated one decides; a skipped (cancelled) one or one with no
  choice publishes nothing;
- an annotation already published, or older than the one published for its id, is not published again.

Where the last sweep stopped is kept in memory; at start it is the newest ``annotated_at`` among the last
records of ``<task>.feedback``, so a restarted bridge sweeps only what it may have missed, and publishes no
annotation that old again.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from shared.review.label_studio import LabelStudio, LabelStudioError
from shared.review.labelling import ID_KEY, verdict_label

__all__ = ["SOURCE", "VerdictPublisher", "feedback_record", "latest_annotation", "watermark_of"]

logger = logging.getLogger(__name__)

#: ``source`` of the feedback records this bridge writes (others, e.g. typed by hand, have none).
SOURCE = "label-studio"
# Feedback records per partition read at start for the watermark.
_TAIL = 500


def latest_annotation(task: dict) -> dict | None:
    """The annotation that decides a task's verdict: its most recently updated one (cancelled or not)."""
    annotations = [a for a in task.get("annotations") or [] if isinstance(a, dict)]
    return max(annotations, key=lambda a: str(a.get("updated_at", "")), default=None)


def feedback_record(task_data: dict, annotation: dict, *, entities: bool) -> dict | None:
    """The feedback record of ``annotation`` on the task with ``task_data``, or ``None`` when it publishes
    nothing: skipped, no verdict in it, or a task the bridge did not create (no ``slm_id``)."""
    item_id = task_data.get(ID_KEY) if isinstance(task_data, dict) else None
    if not isinstance(item_id, str) or annotation.get("was_cancelled"):
        return None
    label = verdict_label(annotation.get("result"), entities=entities)
    if label is None:
        return None
    return {"id": item_id, "label": label, "source": SOURCE, "annotation_id": annotation.get("id"),
            "annotated_at": annotation.get("updated_at")}


def watermark_of(records: list) -> str | None:
    """The newest ``annotated_at`` among this bridge's feedback ``records`` (kafka-python records)."""
    newest = None
    for record in records:
        try:
            payload = json.loads(record.value)
        except (TypeError, ValueError):
            continue
        if isinstance(payload, dict) and payload.get("source") == SOURCE and isinstance(payload.get("annotated_at"), str):
            newest = max(newest or "", payload["annotated_at"])
    return newest


class VerdictPublisher:
    """The thread that publishes verdicts from webhook events and periodic sweeps.

    Args:
        label_studio (`LabelStudio`): where the sweep reads.
        project (`int`): the task's project.
        send (`Callable[[str, bytes], None]`): publishes one value keyed by id and waits for its acknowledgement.
        entities (`bool`): verdicts are spans.
        sweep_interval_s (`float`): time between sweeps.
        watermark (`str | None`): sweep annotations updated after this (ISO time); ``None``: all.
        on_published, on_retry, on_sweep (`Callable`): metric and health hooks (``on_sweep`` gets whether
            Label Studio answered).
    """

    def __init__(self, label_studio: LabelStudio, project: int, send: Callable[[str, bytes], None], *, entities: bool,
                 sweep_interval_s: float, watermark: str | None, retry_max_s: float = 30.0,
                 on_published: Callable[[], None] = lambda: None, on_retry: Callable[[str], None] = lambda _: None,
                 on_sweep: Callable[[bool], None] = lambda _: None) -> None:
        self.label_studio = label_studio
        self.project = project
        self._send = send
        self.entities = entities
        self.sweep_interval_s = sweep_interval_s
        self.watermark = watermark
        # Verdicts go out in order from this one thread, so every annotation up to the newest one published before
        # a restart was published then: the sweep, which reads tasks by their (later) update time, skips them.
        self._floor = watermark or ""
        self.retry_max_s = retry_max_s
        self._on_published = on_published
        self._on_retry = on_retry
        self._on_sweep = on_sweep
        self._events: queue.Queue[tuple[dict, dict]] = queue.Queue()
        self._published: dict[str, str] = {}  # id -> updated_at of the annotation last published for it

    def offer(self, task_data: dict, annotation: dict) -> None:
        """A webhook's annotation, published by the thread in arrival order."""
        self._events.put((task_data, annotation))

    def _publish(self, task_data: dict, annotation: dict, stop: threading.Event) -> bool:
        record = feedback_record(task_data, annotation, entities=self.entities)
        if record is None:
            return False
        at = str(annotation.get("updated_at", ""))
        if at <= self._floor or self._published.get(record["id"], "") >= at:
            return False  # already published, or older than what was
        backoff = 0.5
        while not stop.is_set():
            try:
                self._send(record["id"], json.dumps(record, ensure_ascii=False).encode())
                break
            except Exception as exc:  # kafka-python raises a KafkaError family, or a timeout
                self._on_retry("kafka")
                logger.warning("publishing a verdict failed (%s); retrying in %.1fs", type(exc).__name__, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, self.retry_max_s)
        else:
            return False
        self._published[record["id"]] = at
        self._on_published()
        return True

    def sweep(self, stop: threading.Event) -> int:
        """Publish the verdicts of tasks updated after the watermark; returns how many were published.

        Raises:
            LabelStudioError: Label Studio did not answer; the watermark stays, the next sweep repeats.
        """
        published, newest = 0, self.watermark
        for task in self.label_studio.annotated_tasks(self.project, self.watermark):
            annotation = latest_annotation(task)
            if annotation is not None and self._publish(task.get("data", {}), annotation, stop):
                published += 1
            if stop.is_set():
                return published
            # The task's own update time: a later task update than any annotation's, so no task is swept twice.
            newest = max(newest or "", str(task.get("updated_at", "")))
        self.watermark = newest
        return published

    def run(self, stop: threading.Event) -> None:
        """Publish webhook events as they come and sweep every ``sweep_interval_s``, until ``stop``."""
        next_sweep = 0.0
        while not stop.is_set():
            if time.monotonic() >= next_sweep:
                try:
                    count = self.sweep(stop)
                    self._on_sweep(True)
                    if count:
                        logger.info("sweep published %d verdicts a webhook had not", count)
                except LabelStudioError as exc:
                    self._on_sweep(False)
                    self._on_retry("label_studio")
                    logger.warning("sweep of project %d failed: %s", self.project, exc)
                next_sweep = time.monotonic() + self.sweep_interval_s
            try:
                task_data, annotation = self._events.get(timeout=max(0.05, min(1.0, next_sweep - time.monotonic())))
            except queue.Empty:
                continue
            self._publish(task_data, annotation, stop)
