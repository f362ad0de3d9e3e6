"""The review bridge of one task: ``<task>.review`` into Label Studio tasks, Label Studio's verdicts into
``<task>.feedback`` (``slm review bridge``; the chart's ``review.enabled`` runs it as a Deployment).

Two threads and an HTTP server:

- the writer consumes ``<task>.review`` in its own group and writes each batch's tasks
  (:class:`shared.review.tasks_writer.TasksWriter`); its offsets are committed only after Label Studio has
  every task of the batch. While Label Studio is down or refuses, the batch is retried with backoff (the
  consumer is sought back to it, so it keeps polling and stays in its group) and nothing is committed;
- the verdict publisher (:class:`shared.review.verdicts.VerdictPublisher`) publishes webhook events and sweeps;
- the HTTP server answers ``POST /webhook`` (Label Studio's calls, which must carry the shared secret),
  ``/livez``, ``/readyz`` (503 until the project is set up, and while Label Studio or Kafka fails) and
  ``/metrics``.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

from shared.kafka.consumer import isolation_level
from shared.kafka.producer import build_producer
from shared.kafka.settings import KafkaSettings
from shared.kafka.topic_reader import NotAJsonObject, json_object, read_topic
from shared.kafka.topics import TaskTopics, ensure_topics
from shared.review.label_studio import LabelStudio, LabelStudioError
from shared.review.labelling import NotReviewable, label_config, review_item
from shared.review.settings import ReviewSettings
from shared.review.tasks_writer import TasksWriter
from shared.review.verdicts import VerdictPublisher, watermark_of

__all__ = ["BridgeMetrics", "ReviewBridge", "SECRET_HEADER"]

logger = logging.getLogger(__name__)

#: The header Label Studio's webhook carries the shared secret in.
SECRET_HEADER = "X-Slm-Webhook-Secret"
_SEND_TIMEOUT_S = 30.0


class BridgeMetrics:
    """The bridge's Prometheus series, in a registry of its own, every one labelled with the task."""

    def __init__(self, task: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.task = task
        self.tasks_created = Counter("slm_review_tasks_created", "Label Studio tasks created from review records",
                                     ["task"], registry=self.registry).labels(task)
        self.verdicts_published = Counter("slm_review_verdicts_published", "verdicts published to <task>.feedback",
                                          ["task"], registry=self.registry).labels(task)
        self._retries = Counter("slm_review_retries", "calls retried because Label Studio or Kafka failed",
                                ["task", "target"], registry=self.registry)
        self._skipped = Counter("slm_review_records_skipped", "review records that cannot become a task",
                                ["task", "reason"], registry=self.registry)
        self.ready = Gauge("slm_review_ready", "1 while the bridge reaches Label Studio and Kafka", ["task"],
                           registry=self.registry).labels(task)

    def retry(self, target: str) -> None:
        self._retries.labels(self.task, target).inc()

    def skipped(self, reason: str) -> None:
        self._skipped.labels(self.task, reason).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


@dataclass
class _Health:
    set_up: bool = False
    label_studio_ok: bool = False
    kafka_ok: bool = False

    @property
    def ready(self) -> bool:
        return self.set_up and self.label_studio_ok and self.kafka_ok


class ReviewBridge:
    """The bridge of ``task`` whose model has ``labels``.

    Args:
        task (`str`): the task whose ``<task>.review`` and ``<task>.feedback`` it connects.
        labels (`list[str]`): the model's output labels (IOB2 tags for entities): the project's choices.
        entities (`bool`): the task's answers and verdicts are spans.
        kafka (`KafkaSettings`): the broker, read as the services read it.
        review (`ReviewSettings`): Label Studio and the bridge's own settings.
        port (`int`): where the HTTP server listens (for the default webhook URL).
    """

    def __init__(self, task: str, labels: list[str], *, entities: bool, kafka: KafkaSettings, review: ReviewSettings,
                 port: int) -> None:
        self.task, self.labels, self.entities = task, labels, entities
        self.kafka, self.review = kafka, review
        self.topics = TaskTopics(task, kafka.topic_prefix)
        self.group = review.group_id or f"{self.topics.group}-review-bridge"
        self.project_title = review.project or f"slm-services {task}"
        self.webhook_url = review.webhook_url or f"http://127.0.0.1:{port}/webhook"
        self.secret = (review.webhook_secret.get_secret_value() if review.webhook_secret else secrets.token_urlsafe(24))
        self.label_studio = LabelStudio(review.label_studio_url, review.label_studio_token.get_secret_value())
        self.metrics = BridgeMetrics(task)
        self.health = _Health()
        self.stop = threading.Event()
        self.project: int | None = None
        self.verdicts: VerdictPublisher | None = None
        self._threads: list[threading.Thread] = []

    # -- life cycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        thread = threading.Thread(target=self._run, name="review-bridge", daemon=True)
        thread.start()
        self._threads.append(thread)

    def close(self, timeout: float = 10.0) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self.label_studio.close()

    def _update_ready(self) -> None:
        self.metrics.ready.set(1 if self.health.ready else 0)

    def _retrying(self, what: str, target: str, call):
        """``call()`` until it succeeds or the bridge stops, waiting longer after each failure."""
        backoff = 0.5
        while not self.stop.is_set():
            try:
                return call()
            except Exception as exc:  # LabelStudioError, a KafkaError, a timeout: all are waited out
                self.metrics.retry(target)
                if target == "label_studio":
                    self.health.label_studio_ok = False
                else:
                    self.health.kafka_ok = False
                self._update_ready()
                logger.warning("%s failed (%s); retrying in %.1fs", what, exc if isinstance(exc, LabelStudioError)
                               else type(exc).__name__, backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, self.review.retry_max_s)
        return None

    def _label_studio_answered(self, ok: bool) -> None:
        self.health.label_studio_ok = ok
        self._update_ready()

    def _set_up_label_studio(self) -> int:
        project = self.label_studio.ensure_project(self.project_title, label_config(self.labels, entities=self.entities))
        self.label_studio.ensure_webhook(project, self.webhook_url, {SECRET_HEADER: self.secret})
        return project

    def _run(self) -> None:
        try:
            self._serve()
        except Exception:
            logger.exception("the review bridge stopped on an unexpected error")
            self.health.set_up = False
            self._update_ready()
            raise

    def _serve(self) -> None:
        self.project = self._retrying("setting up the Label Studio project", "label_studio", self._set_up_label_studio)
        if self.project is None:
            return
        self.health.label_studio_ok = True
        if self.kafka.create_topics:
            self._retrying("creating the topics", "kafka",
                           lambda: ensure_topics(self.kafka, [self.topics.review, self.topics.feedback]))
        watermark = self._retrying("reading the last verdicts", "kafka",
                                   lambda: [watermark_of(read_topic(self.kafka, self.topics.feedback, last=500,
                                                                    timeout_s=60))])
        if watermark is None:
            return
        producer = self._retrying("connecting the producer", "kafka", lambda: build_producer(self.kafka, None))
        consumer = self._retrying("joining the review consumer group", "kafka", self._consumer)
        if producer is None or consumer is None:
            return
        try:
            self.verdicts = VerdictPublisher(
                self.label_studio, self.project,
                lambda key, value: producer.send(self.topics.feedback, key=key.encode(), value=value).get(_SEND_TIMEOUT_S),
                entities=self.entities, sweep_interval_s=self.review.sweep_interval_s, watermark=watermark[0],
                retry_max_s=self.review.retry_max_s, on_published=self.metrics.verdicts_published.inc,
                on_retry=self.metrics.retry, on_sweep=self._label_studio_answered)
            publisher = threading.Thread(target=self.verdicts.run, args=(self.stop,), name="review-verdicts", daemon=True)
            publisher.start()
            self._threads.append(publisher)
            self.health.kafka_ok = self.health.set_up = True
            self._update_ready()
            logger.info("review bridge of %s: %s -> Label Studio project %d -> %s (group %s)", self.task,
                        self.topics.review, self.project, self.topics.feedback, self.group)
            self._consume(consumer, TasksWriter(self.label_studio, self.project, entities=self.entities))
        finally:
            consumer.close(autocommit=False)
            producer.close(timeout=10)

    def _consumer(self):
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(**self.kafka.client_options(), **self.kafka.group_options(), group_id=self.group,
                                 enable_auto_commit=False, auto_offset_reset="earliest",
                                 max_poll_records=self.review.batch, isolation_level=isolation_level(self.kafka))
        consumer.subscribe([self.topics.review])
        return consumer

    # -- review records into tasks --------------------------------------------------------------------

    def _items(self, records: list) -> list:
        items = []
        for record in records:
            try:
                items.append(review_item(json_object(record.value)))
            except (NotReviewable, NotAJsonObject) as exc:
                # Nothing a reviewer could label; the record stays on the topic for whoever needs it.
                self.metrics.skipped(type(exc).__name__)
                logger.warning("review record %s[%d]@%d skipped: %s", record.topic, record.partition, record.offset, exc)
        return items

    def _consume(self, consumer, writer: TasksWriter) -> None:
        from kafka.structs import OffsetAndMetadata

        backoff = 0.5
        while not self.stop.is_set():
            polled = consumer.poll(timeout_ms=500, max_records=self.review.batch)
            records = [record for batch in polled.values() for record in batch]
            if not records:
                continue
            try:
                created = writer.write(self._items(records))
            except LabelStudioError as exc:
                self.metrics.retry("label_studio")
                self.health.label_studio_ok = False
                self._update_ready()
                logger.warning("writing %d review records failed (%s); retrying in %.1fs", len(records), exc, backoff)
                for tp, batch in polled.items():  # read the batch again: nothing is committed past it
                    consumer.seek(tp, batch[0].offset)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, self.review.retry_max_s)
                continue
            backoff = 0.5
            self.metrics.tasks_created.inc(created)
            self.health.label_studio_ok = True
            self._update_ready()
            offsets = {tp: OffsetAndMetadata(batch[-1].offset + 1, "", -1) for tp, batch in polled.items()}
            try:
                consumer.commit(offsets)
                self.health.kafka_ok = True
                self._update_ready()
            except Exception as exc:  # a rebalance took the partitions: their next owner finds the tasks
                self.metrics.retry("kafka")
                logger.warning("committing review offsets failed (%s); the records will be looked up again",
                               type(exc).__name__)

    # -- webhook -------------------------------------------------------------------------------------

    def accept_webhook(self, secret: str | None, body: bytes) -> tuple[int, dict]:
        """Label Studio's webhook call: ``(status, answer)``. A verdict is queued for the publisher."""
        if secret is None or not hmac.compare_digest(secret.encode(), self.secret.encode()):
            return 401, {"detail": f"missing or wrong {SECRET_HEADER}"}
        try:
            payload = json.loads(body)
        except ValueError:
            return 400, {"detail": "body is not JSON"}
        if not isinstance(payload, dict):
            return 400, {"detail": "body is not a JSON object"}
        action = payload.get("action")
        task, annotation = payload.get("task"), payload.get("annotation")
        if action not in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED") or not isinstance(task, dict) \
                or not isinstance(annotation, dict):
            return 200, {"accepted": False, "detail": f"action {action!r} carries no verdict"}
        if self.verdicts is None:
            return 503, {"detail": "the bridge is not set up yet; the sweep will find this annotation"}
        self.verdicts.offer(task.get("data") or {}, annotation)
        return 200, {"accepted": True}


def http_app(bridge: ReviewBridge):
    """The bridge's HTTP endpoints as an ASGI app."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def webhook(request: Request) -> Response:
        status, answer = bridge.accept_webhook(request.headers.get(SECRET_HEADER), await request.body())
        return JSONResponse(answer, status_code=status)

    async def livez(_: Request) -> Response:
        alive = all(thread.is_alive() for thread in bridge._threads) and not bridge.stop.is_set()
        return JSONResponse({"alive": alive}, status_code=200 if alive else 503)

    async def readyz(_: Request) -> Response:
        health = bridge.health
        body = {"ready": health.ready, "project": bridge.project, "label_studio": health.label_studio_ok,
                "kafka": health.kafka_ok}
        return JSONResponse(body, status_code=200 if health.ready else 503)

    async def metrics(_: Request) -> Response:
        return Response(bridge.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/webhook", webhook, methods=["POST"]), Route("/livez", livez),
                             Route("/healthz", livez), Route("/readyz", readyz), Route("/metrics", metrics)])


def serve_bridge(bridge: ReviewBridge, host: str, port: int) -> None:
    """Run ``bridge`` and its HTTP server until SIGTERM or Ctrl-C."""
    import signal

    import uvicorn

    # uvicorn stops gracefully on SIGTERM and SIGINT, then raises the signal again under the handlers it found:
    # with these, that second one ends nothing, and the bridge closes its clients (leaving its group) below.
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: None)
    bridge.start()
    started = time.monotonic()
    try:
        uvicorn.Server(uvicorn.Config(http_app(bridge), host=host, port=port, log_level="warning",
                                      access_log=False)).run()
    finally:
        bridge.close()
        logger.info("review bridge of %s stopped after %.0fs", bridge.task, time.monotonic() - started)
