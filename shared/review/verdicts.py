"""Reviewers' annotations into ``<task>.feedback`` records, as ``slm feedback export`` reads them.

Annotations arrive two ways: Label Studio's webhook (at once, but delivered once with a one-second
timeout and never retried) and a sweep of the project's tasks updated since the last one (which finds
whatever a webhook missed: the bridge was down, restarting, not ready, or Kafka refused). Both go through
one thread, so records are published in the order decided here, and the last verdict of an id is its
newest annotation:

- a skipped (cancelled) annotation, or one with no choice, publishes nothing; of a task's annotations the
  sweep takes the most recently updated one that is not skipped (what the webhooks would have published);
- an annotation already published, or older than the one published for its id, is not published again.

What was published is known by id: at start from the whole of ``<task>.feedback`` (this bridge's records,
``source: label-studio``), then as it publishes. So the first sweep after a start reads every task annotated
within the topic's retention and publishes exactly what is missing; later ones read the tasks updated since
the previous sweep's newest, less an overlap that catches a task updated while a sweep paged past it. An
annotation older than the retention is never published again: its record was deleted on purpose, and once
more it would outrank a verdict given after it by other means.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from shared.review.backoff import Backoff
from shared.review.label_studio import LabelStudio
from shared.review.labelling import ID_KEY, verdict_label
from shared.review.tracing import mark_unsent, verdict_span

__all__ = ["SOURCE", "VerdictPublisher", "feedback_record", "instant", "latest_annotation", "published_of"]

logger = logging.getLogger(__name__)

#: ``source`` of the feedback records this bridge writes (others, e.g. typed by hand, have none).
SOURCE = "label-studio"
# How far before the previous sweep's newest task a sweep starts reading again.
_OVERLAP = timedelta(seconds=60)


def instant(value: Any) -> datetime | None:
    """A Label Studio time (ISO 8601; it leaves the fraction out when it is zero) as an aware datetime."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _filter_time(moment: datetime) -> str:
    # The one format Label Studio's Datetime filter parses: always with microseconds, in UTC.
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def latest_annotation(task: dict) -> dict | None:
    """The annotation that decides a task's verdict: its most recently updated one that is not skipped."""
    annotations = [a for a in task.get("annotations") or []
                   if isinstance(a, dict) and not a.get("was_cancelled") and instant(a.get("updated_at"))]
    return max(annotations, key=lambda a: instant(a["updated_at"]), default=None)


def feedback_record(task_data: dict, annotation: dict, *, entities: bool) -> dict | None:
    """The feedback record of ``annotation`` on the task with ``task_data``, or ``None`` when it publishes
    nothing: skipped, no verdict in it, or a task the bridge did not create (no ``slm_id``)."""
    item_id = task_data.get(ID_KEY) if isinstance(task_data, dict) else None
    if not isinstance(item_id, str) or not isinstance(annotation, dict) or annotation.get("was_cancelled"):
        return None
    label = verdict_label(annotation.get("result"), entities=entities)
    if label is None:
        return None
    return {"id": item_id, "label": label, "source": SOURCE, "annotation_id": annotation.get("id"),
            "annotated_at": annotation.get("updated_at")}


def published_of(records: Iterable) -> dict[str, datetime]:
    """id -> the newest ``annotated_at`` this bridge published for it, from ``<task>.feedback``'s records."""
    published: dict[str, datetime] = {}
    for record in records:
        try:
            payload = json.loads(record.value)
        except (TypeError, ValueError):
            continue
        if not isinstance(payload, dict) or payload.get("source") != SOURCE or not isinstance(payload.get("id"), str):
            continue
        at = instant(payload.get("annotated_at"))
        if at is not None and (payload["id"] not in published or published[payload["id"]] < at):
            published[payload["id"]] = at
    return published


class VerdictPublisher:
    """The thread that publishes verdicts from webhook events and periodic sweeps.

    Args:
        label_studio (`LabelStudio`): where the sweep reads.
        project (`int`): the task's project.
        send (`Callable[[str, bytes, list[tuple[str, bytes]]], None]`): publishes one value keyed by id, with
            headers, and waits for its acknowledgement.
        task, topic (`str`): the task and its feedback topic, as the verdicts' spans name them.
        entities (`bool`): verdicts are spans.
        sweep_interval_s (`float`): time between sweeps.
        published (`dict[str, datetime]`): what was published before this start (:func:`published_of`).
        oldest (`datetime`, *optional*): annotations updated before this are not published (the feedback
            topic's retention would have deleted them); ``None``: no limit.
        retry_max_s (`float`): the longest wait between attempts to publish while Kafka refuses.
        on_published, on_retry, on_sweep (`Callable`): metric and health hooks (``on_sweep`` gets whether
            Label Studio answered).
    """

    def __init__(self, label_studio: LabelStudio, project: int, send: Callable[[str, bytes, list], None], *,
                 entities: bool, task: str, topic: str, sweep_interval_s: float,
                 published: dict[str, datetime] | None = None, oldest: datetime | None = None,
                 retry_max_s: float = 30.0,
                 on_published: Callable[[], None] = lambda: None, on_retry: Callable[[str], None] = lambda _: None,
                 on_sweep: Callable[[bool], None] = lambda _: None) -> None:
        self.label_studio = label_studio
        self.project = project
        self._send = send
        self.entities = entities
        self.task, self.topic = task, topic
        self.sweep_interval_s = sweep_interval_s
        self.retry_max_s = retry_max_s
        self._on_published = on_published
        self._on_retry = on_retry
        self._on_sweep = on_sweep
        self._events: queue.Queue[tuple[dict, dict]] = queue.Queue()
        self._published = dict(published or {})
        self.oldest = oldest
        self.swept_to: datetime | None = None  # the newest task update the last sweep saw; None: sweep all

    def offer(self, task_data: dict, annotation: dict) -> None:
        """A webhook's annotation, published by the thread in arrival order."""
        self._events.put((task_data, annotation))

    def _publish(self, task_data: dict, annotation: dict, stop: threading.Event) -> bool:
        record = feedback_record(task_data, annotation, entities=self.entities)
        at = instant(annotation.get("updated_at")) if isinstance(annotation, dict) else None
        if record is None or at is None:
            return False
        previous = self._published.get(record["id"])
        if previous is not None and previous >= at:
            return False  # already published, or older than what was
        if self.oldest is not None and at < self.oldest:
            return False  # the sweep asks for newer tasks only; this one's task changed after its annotation
        value = json.dumps(record, ensure_ascii=False).encode()
        backoff = Backoff(self.retry_max_s)
        with verdict_span(self.task, self.topic, task_data, annotation.get("id")) as headers:
            while not stop.is_set():
                try:
                    self._send(record["id"], value, headers)
                    break
                except Exception as exc:  # kafka-python raises a KafkaError family, or a timeout
                    self._on_retry("kafka")
                    wait = backoff.next()
                    logger.warning("publishing a verdict failed (%s); retrying in %.1fs", type(exc).__name__, wait)
                    stop.wait(wait)
            else:
                mark_unsent()
                return False
        self._published[record["id"]] = at
        self._on_published()
        return True

    def sweep(self, stop: threading.Event) -> int:
        """Publish the verdicts of tasks updated since the last sweep (since ``oldest``, the first time); returns
        how many.

        Raises:
            LabelStudioError: Label Studio did not answer; the next sweep reads the same tasks again.
        """
        start = self.oldest if self.swept_to is None else self.swept_to - _OVERLAP
        since = None if start is None else _filter_time(start)
        published, newest = 0, self.swept_to
        for task in self.label_studio.annotated_tasks(self.project, since):
            if stop.is_set():
                return published
            if not isinstance(task, dict):
                continue
            annotation = latest_annotation(task)
            if annotation is not None and self._publish(task.get("data") or {}, annotation, stop):
                published += 1
            updated = instant(task.get("updated_at"))
            if updated is not None and (newest is None or updated > newest):
                newest = updated
        self.swept_to = newest  # by Label Studio's clock; still None while no task is annotated
        return published

    def run(self, stop: threading.Event) -> None:
        """Publish webhook events as they come and sweep every ``sweep_interval_s``, until ``stop``.

        Nothing ends the thread but ``stop``: a failed sweep is repeated at the next interval, and an event
        that cannot be read is counted and dropped (the sweep reads its task again)."""
        next_sweep = 0.0
        while not stop.is_set():
            if time.monotonic() >= next_sweep:
                try:
                    count = self.sweep(stop)
                    self._on_sweep(True)
                    if count:
                        logger.info("sweep published %d verdicts a webhook had not", count)
                except Exception as exc:  # LabelStudioError, or an answer of an unexpected shape
                    self._on_sweep(False)
                    self._on_retry("label_studio")
                    logger.warning("sweep of project %d failed: %s", self.project, exc)
                next_sweep = time.monotonic() + self.sweep_interval_s
            try:
                task_data, annotation = self._events.get(timeout=max(0.05, min(1.0, next_sweep - time.monotonic())))
            except queue.Empty:
                continue
            try:
                self._publish(task_data, annotation, stop)
            except Exception as exc:
                self._on_retry("event")
                logger.warning("a webhook event could not be published (%s); the next sweep reads its task",
                               type(exc).__name__)
