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
from datetime import datetime, timezone

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

from shared.kafka.consumer import isolation_level
from shared.kafka.producer import build_producer
from shared.kafka.settings import KafkaSettings
from shared.kafka.topic_reader import NotAJsonObject, json_object, read_topic
from shared.kafka.topics import TaskTopics, TopicConfigUnknown, ensure_topics, topic_retention
from shared.review.label_studio import LabelStudio, LabelStudioError
from shared.review.backoff import Backoff
from shared.review.labelling import NotReviewable, label_config, project_title, review_item, task_payload
from shared.review.settings import ReviewSettings
from shared.review.tasks_writer import TasksWriter
from shared.review.tracing import import_span
from shared.review.verdicts import VerdictPublisher, published_of
from shared.telemetry import shutdown_telemetry, trace_carrier

__all__ = ["BridgeMetrics", "ReviewBridge", "SECRET_HEADER"]

logger = logging.getLogger(__name__)

#: The header Label Studio's webhook carries the shared secret in.
SECRET_HEADER = "X-Slm-Webhook-Secret"
_SEND_TIMEOUT_S = 30.0
# A webhook payload is one annotation with its task: far under this.
_MAX_WEBHOOK_BYTES = 4 * 1024 * 1024


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
        self.project_title = project_title(task, review.project)
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

    @property
    def alive(self) -> bool:
        """Every thread of the bridge runs (what ``/livez`` reports)."""
        return not self.stop.is_set() and all(thread.is_alive() for thread in self._threads)

    def _reached(self, target: str, ok: bool) -> None:
        """Whether ``target`` (``label_studio`` or ``kafka``) answered the last call made to it."""
        if target == "label_studio":
            self.health.label_studio_ok = ok
        else:
            self.health.kafka_ok = ok
        self.metrics.ready.set(1 if self.health.ready else 0)

    def _retried(self, target: str) -> None:
        self.metrics.retry(target)
        if target in ("label_studio", "kafka"):
            self._reached(target, False)

    def _retrying(self, what: str, target: str, call):
        """``call()`` until it succeeds or the bridge stops, waiting longer after each failure."""
        backoff = Backoff(self.review.retry_max_s)
        while not self.stop.is_set():
            try:
                answer = call()
                self._reached(target, True)
                return answer
            except Exception as exc:  # LabelStudioError, a KafkaError, a timeout: all are waited out
                self._retried(target)
                wait = backoff.next()
                logger.warning("%s failed (%s); retrying in %.1fs", what, exc if isinstance(exc, LabelStudioError)
                               else type(exc).__name__, wait)
                self.stop.wait(wait)
        return None

    def _set_up_label_studio(self) -> int:
        project = self.label_studio.ensure_project(self.project_title, label_config(self.labels, entities=self.entities))
        try:
            self.label_studio.ensure_webhook(project, self.webhook_url, {SECRET_HEADER: self.secret})
        except LabelStudioError as exc:
            if exc.status is None or exc.status >= 500:
                raise  # down: set up again
            # Refused for good, most often Label Studio's SSRF guard refusing an in-cluster address (turn it
            # off, or allow the bridge's network, on that Label Studio); the sweep still brings every verdict.
            self.metrics.skipped("webhook_refused")
            logger.error("Label Studio refused the webhook to %s (%s): verdicts come by the sweep only, every "
                         "%.0fs", self.webhook_url, exc, self.review.sweep_interval_s)
        return project

    def _run(self) -> None:
        try:
            self._serve()
        except Exception:
            logger.exception("the review bridge stopped on an unexpected error")
            self.health.set_up = False
            self.metrics.ready.set(0)
            raise

    def _serve(self) -> None:
        self.project = self._retrying("setting up the Label Studio project", "label_studio", self._set_up_label_studio)
        if self.project is None:
            return
        if self.kafka.create_topics:
            self._retrying("creating the topics", "kafka",
                           lambda: ensure_topics(self.kafka, [self.topics.review, self.topics.feedback]))
        started = self._retrying("reading the published verdicts", "kafka", self._published_verdicts)
        if started is None:
            return
        published, oldest = started
        producer = self._retrying("connecting the producer", "kafka", lambda: build_producer(self.kafka, None))
        consumer = self._retrying("joining the review consumer group", "kafka", self._consumer)
        if producer is None or consumer is None:
            return
        try:
            self.verdicts = VerdictPublisher(
                self.label_studio, self.project,
                lambda key, value, headers: producer.send(self.topics.feedback, key=key.encode(), value=value,
                                                          headers=headers).get(_SEND_TIMEOUT_S),
                entities=self.entities, task=self.task, topic=self.topics.feedback,
                sweep_interval_s=self.review.sweep_interval_s, published=published, oldest=oldest,
                retry_max_s=self.review.retry_max_s, on_published=self._verdict_published,
                on_retry=self._retried, on_sweep=lambda ok: self._reached("label_studio", ok))
            publisher = threading.Thread(target=self.verdicts.run, args=(self.stop,), name="review-verdicts", daemon=True)
            publisher.start()
            self._threads.append(publisher)
            self.health.set_up = True
            self._reached("kafka", True)
            logger.info("review bridge of %s: %s -> Label Studio project %d -> %s (group %s)", self.task,
                        self.topics.review, self.project, self.topics.feedback, self.group)
            self._consume(consumer, TasksWriter(self.label_studio, self.project, entities=self.entities))
        finally:
            consumer.close(autocommit=False)
            producer.close(timeout=10)

    def _published_verdicts(self) -> tuple[dict[str, datetime], datetime | None]:
        """What this bridge has published, by id, and the oldest annotation it may still publish.

        Verdicts are few (people make them): the whole topic says what was published. Its retention says how
        far back a verdict missing from it is still missing, and not deleted on purpose."""
        published = published_of(read_topic(self.kafka, self.topics.feedback, timeout_s=120))
        try:
            retention = topic_retention(self.kafka, self.topics.feedback)
        except TopicConfigUnknown as exc:
            logger.warning("%s; the first sweep publishes every verdict missing from the topic, however old", exc)
            return published, None
        if retention is None:
            return published, None
        try:
            oldest = datetime.now(timezone.utc) - retention
        except OverflowError:  # a retention longer than the calendar: no limit
            return published, None
        logger.info("verdicts annotated before %s (the retention of %s) are not published",
                    oldest.isoformat(timespec="seconds"), self.topics.feedback)
        return published, oldest

    def _verdict_published(self) -> None:
        self.metrics.verdicts_published.inc()
        self._reached("kafka", True)

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
                item = review_item(json_object(record.value), trace_carrier(record.headers))
                task_payload(item, entities=self.entities)  # one that cannot be written must not block the rest
                items.append(item)
            except (NotReviewable, NotAJsonObject) as exc:
                # Nothing a reviewer could label; the record stays on the topic for whoever needs it.
                self.metrics.skipped(type(exc).__name__)
                logger.warning("review record %s[%d]@%d skipped: %s", record.topic, record.partition, record.offset, exc)
            except Exception as exc:
                self.metrics.skipped(type(exc).__name__)
                logger.warning("review record %s[%d]@%d skipped: %s", record.topic, record.partition, record.offset,
                               type(exc).__name__)
        return items

    def _consume(self, consumer, writer: TasksWriter) -> None:
        from kafka.structs import OffsetAndMetadata

        backoff = Backoff(self.review.retry_max_s)
        while not self.stop.is_set():
            polled = consumer.poll(timeout_ms=500, max_records=self.review.batch)
            records = [record for batch in polled.values() for record in batch]
            if not records:
                continue
            try:
                with import_span(self.task, self.topics.review, self.group, records) as span:
                    created = writer.write(self._items(records))
                    span.set_attribute("slm.review.tasks_created", created)
            except Exception as exc:  # LabelStudioError, or an answer of an unexpected shape: retried alike
                self._retried("label_studio")
                wait = backoff.next()
                logger.warning("writing %d review records failed (%s); retrying in %.1fs", len(records),
                               exc if isinstance(exc, LabelStudioError) else type(exc).__name__, wait)
                for tp, batch in polled.items():  # read the batch again: nothing is committed past it
                    consumer.seek(tp, batch[0].offset)
                self.stop.wait(wait)
                continue
            backoff.reset()
            self.metrics.tasks_created.inc(created)
            self._reached("label_studio", True)
            offsets = {tp: OffsetAndMetadata(batch[-1].offset + 1, "", -1) for tp, batch in polled.items()}
            try:
                consumer.commit(offsets)
                self._reached("kafka", True)
            except Exception as exc:  # a rebalance took the partitions, or the broker is down: looked up again
                self._retried("kafka")
                logger.warning("committing review offsets failed (%s); the records will be looked up again",
                               type(exc).__name__)

    # -- webhook -------------------------------------------------------------------------------------

    def authorised(self, secret: str | None) -> bool:
        """Whether a webhook call carries the shared secret."""
        return secret is not None and hmac.compare_digest(secret.encode(), self.secret.encode())

    def accept_webhook(self, secret: str | None, body: bytes) -> tuple[int, dict]:
        """Label Studio's webhook call: ``(status, answer)``. A verdict is queued for the publisher."""
        if not self.authorised(secret):
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
        secret = request.headers.get(SECRET_HEADER)
        if not bridge.authorised(secret):  # before reading a body from whoever this is
            return JSONResponse({"detail": f"missing or wrong {SECRET_HEADER}"}, status_code=401)
        size = request.headers.get("content-length")
        if size is None or not size.isdigit() or int(size) > _MAX_WEBHOOK_BYTES:
            return JSONResponse({"detail": f"a webhook body must state its length, at most {_MAX_WEBHOOK_BYTES} "
                                           f"bytes"}, status_code=413)
        status, answer = bridge.accept_webhook(secret, await request.body())
        return JSONResponse(answer, status_code=status)

    async def livez(_: Request) -> Response:
        return JSONResponse({"alive": bridge.alive}, status_code=200 if bridge.alive else 503)

    async def readyz(_: Request) -> Response:
        health = bridge.health
        ready = health.ready and bridge.alive
        body = {"ready": ready, "project": bridge.project, "label_studio": health.label_studio_ok,
                "kafka": health.kafka_ok}
        return JSONResponse(body, status_code=200 if ready else 503)

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
        shutdown_telemetry()  # batched spans would otherwise be lost
        logger.info("review bridge of %s stopped after %.0fs", bridge.task, time.monotonic() - started)
