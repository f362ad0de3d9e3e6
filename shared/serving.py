"""A task as one serving process holds it: the processor (model), the Kafka loop, REST micro-batching.

The BentoML service classes in ``services/<task>/service.py`` declare the API and delegate here;
a Ray Serve replica reads the same object's health and lag (:func:`served_task`).
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from collections.abc import Sequence
from concurrent.futures import Future

from opentelemetry import trace
from pydantic import BaseModel

from shared.rest_batching import MicroBatcher
from shared.drift import drift_monitors
from shared.reference_check import check_reference_at_start
from shared.kafka import TaskConsumerLoop
from shared.schemas import TaskRequestV1
from shared.observed import ObservedProcessor, ResultObserver
from shared.settings import ServiceSettings, ServingSettings
from shared.processors import Prepared, Received, StagedProcessor
from shared.task_kinds import load_processor
from shared.telemetry import TaskInstruments
from shared.telemetry.instruments import role_of

__all__ = ["BatchedProcessor", "ServedTask", "cpu_quota", "onnx_threads_for", "served_task"]

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)


def cpu_quota(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> float | None:
    """CPUs granted by the cgroup v2 quota (a container's CPU limit), or None when unlimited."""
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return int(quota) / int(period)


def onnx_threads_for(settings: ServiceSettings) -> int:
    """ONNX Runtime intra-op threads: the setting, else the CPUs this process may really use.

    CPU affinity alone overstates it in a container: a CPU limit is a cgroup quota, invisible
    to ``sched_getaffinity``, and threads beyond the quota only get throttled.
    """
    if settings.onnx_threads:
        return settings.onnx_threads
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    quota = cpu_quota()
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(1, cpus)


class BatchedProcessor:
    """A processor whose ``process`` goes through a :class:`MicroBatcher`: what the Kafka loop is given.

    ``process(items)`` blocks until all of the items are answered, as a processor does (never refused by
    the REST queue bound: a refused record would be dead-lettered); ``submit(items)``
    returns at once with a future, so that a loop may hand over its next batch (tokenized by the
    batcher's tokenizer thread) while the model still runs the current one.
    Every other attribute (``task``, ``model_id``, ``cache``, ...) is the wrapped processor's.
    """

    def __init__(self, processor: StagedProcessor, batcher: MicroBatcher) -> None:
        self.processor = processor
        self.batcher = batcher

    def __getattr__(self, name: str):
        return getattr(self.processor, name)

    def submit(self, items: Sequence[Received]) -> Future:
        """A future of one result per item, in order."""
        return self.batcher.submit_nowait(items, bounded=False)

    def process(self, items: Sequence[Received]) -> list[BaseModel]:
        return self.submit(items).result()


_SERVED: dict[str, "ServedTask"] = {}


def served_task(task: str) -> "ServedTask | None":
    """What this process serves ``task`` with, once the service has started.

    BentoML builds the service instance inside its ASGI app; a Ray Serve replica reads the
    task's health and Kafka lag through this.
    """
    return _SERVED.get(task)


class ServedTask:
    """Load a task's model, batch its REST requests and, when Kafka is configured, run its consumer loop.

    Args:
        task (`str`): task name (``sentiment``).
        serving (`ServingSettings`): the service's settings (model folder, batching, threads) and
            Kafka's; the loop starts only if ``serving.kafka.bootstrap`` is set.
    """

    def __init__(self, task: str, serving: ServingSettings) -> None:
        self.task = task
        settings, kafka = serving.service, serving.kafka
        model_dir = serving.model_dir(task)
        model = load_processor(task, model_dir, intra_op_threads=onnx_threads_for(settings),
                               max_batch_size=settings.onnx_batch_size,
                               max_batch_tokens=settings.onnx_batch_tokens or None,
                               review_threshold=settings.review_threshold, cache_size=settings.cache_size)
        check_reference_at_start(model, model_dir, settings.reference_check)
        role = role_of(kafka.shadow)
        self.instruments = TaskInstruments(task, model.model_id, role=role)
        model.cache.attributes["role"] = role
        # Every answer, REST's and Kafka's, passes these on its way out.
        observers: list[ResultObserver] = [self.instruments.predictions]
        observers += drift_monitors(task, model.model_id, model_dir, settings.drift_window, role)
        self.processor: ObservedProcessor = ObservedProcessor(model, observers)
        # Our batcher, not BentoML's adaptive batching: see shared/rest_batching.py. Its runs are cut
        # within the model's own run bounds (SLM_ONNX_BATCH_SIZE, SLM_ONNX_BATCH_TOKENS).
        self.batcher = MicroBatcher(self.processor.prepare, self._run, self.processor.budget,
                                    max_queue_ms=settings.batch_max_latency_ms, max_wait_ms=settings.batch_wait_ms)
        self.loop: TaskConsumerLoop | None = None
        if kafka.bootstrap:
            # The loop's batches go through the same batcher: the same planner cuts runs across Kafka
            # and REST items, and one thread runs the model, so the two paths never split the cores.
            self.loop = TaskConsumerLoop(BatchedProcessor(self.processor, self.batcher), kafka,
                                         review_input=settings.review_include_input)
            self.loop.start()
        _SERVED[task] = self
        logger.info('service ready task=%s model=%s kafka=%s', task, self.processor.model_id, kafka.bootstrap or "off")

    async def submit(self, requests: Sequence[TaskRequestV1]) -> list:
        """Results for one REST request's items, computed in runs shared with whatever else is queued.

        Raises:
            Overloaded: the request waited longer than ``batch_max_latency_ms`` (HTTP 503).
        """
        started = time.perf_counter()
        with tracer.start_as_current_span(f"{self.task} answer", attributes={"slm.items": len(requests)}) as span:
            # The model runs these items in runs shared with other requests, under a span of its
            # own (another trace) that links to this one: the request's trace stays its own.
            link = trace.Link(span.get_span_context())
            results = await self.batcher.submit([Received.now(r) for r in requests], tag=link)
        waited_ms = (time.perf_counter() - started) * 1000
        self.instruments.record_latencies([waited_ms] * len(results), path="rest")
        return results

    def _run(self, prepared: Sequence[Prepared], links: Sequence[trace.Link | None]) -> list:
        """One run the batcher planned (REST and, with Kafka on, the loop's items), under a span linked
        to every REST request in it."""
        started = time.perf_counter()
        distinct = list({link.context.span_id: link for link in links if link is not None}.values())
        with tracer.start_as_current_span(f"{self.task} predict", links=distinct,
                                          attributes={"slm.batch_size": len(prepared)}):
            results = self.processor.run(prepared)
        rest = sum(link is not None for link in links)
        if rest:
            review = sum(1 for r, link in zip(results, links) if link is not None and r.review)
            self.instruments.record_batch(polled=rest, results=rest, review=review, dlq_types={},
                                          latency_ms=(time.perf_counter() - started) * 1000, path="rest")
        return results

    def is_ready(self) -> bool:
        """Model loaded (always, once constructed) and, with Kafka on, the loop's readiness
        (:meth:`TaskConsumerLoop.is_ready`: running, unless ``unready_after_s`` asks for more)."""
        return self.loop is None or self.loop.is_ready()

    def is_alive(self) -> bool:
        """False when a restart is the cure: the consumer loop fenced, dead or stuck."""
        return self.loop is None or self.loop.is_alive()

    def close(self) -> None:
        """Stop polling (the batch in hand is finished and committed), then the REST batcher."""
        if self.loop is not None:
            self.loop.stop()
        self.batcher.close()
        if _SERVED.get(self.task) is self:
            del _SERVED[self.task]
