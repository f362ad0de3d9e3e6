"""``slm demo``: the sentiment service on a local broker, fed the test set through Kafka.

Streams every test row to ``sentiment.requests`` (plus a few malformed records, to show
the DLQ), reads ``sentiment.results`` as they arrive, and shows progress, throughput and
the running accuracy of the streamed results against the labels.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from tqdm.auto import tqdm

from shared.errors import SlmError

__all__ = ["DemoSummary", "run_demo"]

logger = logging.getLogger(__name__)

MALFORMED = [b"this is not json", b"\xff\xfe\x00", b'{"id": "no-text"}', b'{"text": "   "}']


@dataclass
class DemoSummary:
    task: str
    sent: int
    results: int
    correct: int
    review: int
    dlq: int
    seconds: float
    service_pid: int | None = None  # set when the service is left running

    @property
    def accuracy(self) -> float:
        return self.correct / self.results if self.results else 0.0

    def lines(self) -> list[str]:
        return [
            f"task            {self.task}",
            f"requests sent   {self.sent} (+{len(MALFORMED)} malformed)",
            f"results         {self.results} in {self.seconds:.1f}s ({self.results / max(self.seconds, 1e-9):.0f} msg/s)",
            f"accuracy        {self.accuracy:.4f} against the labels",
            f"sent to review  {self.review}",
            f"dead letters    {self.dlq} (expected {len(MALFORMED)})",
        ]


def _start_service(task: str, model_dir: Path, port: int, bootstrap: str, log_path: Path) -> subprocess.Popen:
    slm = Path(sys.executable).with_name("slm")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([str(slm), "serve", task, "--port", str(port), "--model", str(model_dir),
                                 "--kafka", bootstrap], stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    deadline = time.monotonic() + 180
    with tqdm(desc=f"starting {task} service", bar_format="{desc}: {elapsed}", leave=False) as bar:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SlmError(f"{task} service exited with {proc.returncode}; see {log_path}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    return proc
            except httpx.HTTPError:
                pass
            bar.update()
            time.sleep(0.5)
    _stop_service(proc)
    raise SlmError(f"{task} service was not ready within 180s; see {log_path}")


def _stop_service(proc: subprocess.Popen) -> None:
    """SIGTERM the BentoML server (it stops its workers, which commit and exit); kill on timeout."""
    import psutil

    workers = psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else []
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
    _, alive = psutil.wait_procs(workers, timeout=30)
    for worker in alive:  # workers run in sessions of their own; never leave one behind
        worker.kill()


def stream_test_set(task: str, bootstrap: str, rows: list[tuple[str, str]], timeout: float = 600) -> DemoSummary:
    """Produce ``rows`` (text, gold label) and consume their results; returns the tally."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    from shared.kafka import TaskTopics

    topics = TaskTopics(task)
    run = uuid.uuid4().hex[:8]
    gold = {f"demo-{run}-{i}": label for i, (_, label) in enumerate(rows)}
    # Read results and DLQ from their current ends, so earlier runs' records are not counted.
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    partitions = [TopicPartition(t, p) for t in (topics.results, topics.dlq)
                  for p in (consumer.partitions_for_topic(t) or {0})]
    consumer.assign(partitions)
    consumer.seek_to_end()
    for tp in partitions:
        consumer.position(tp)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    started = time.perf_counter()
    for i, (text, _) in enumerate(rows):
        key = f"demo-{run}-{i}"
        producer.send(topics.requests, key=key.encode(), value=json.dumps({"id": key, "text": text}).encode(),
                      headers=[("correlation-id", f"demo-{run}".encode())])
    for bad in MALFORMED:
        producer.send(topics.requests, key=f"demo-{run}-bad".encode(), value=bad)
    producer.flush()
    producer.close()

    seen: set[str] = set()
    correct = review = dlq = 0
    deadline = time.monotonic() + timeout
    with tqdm(total=len(rows), desc=f"{task} results", unit="msg") as bar:
        while (len(seen) < len(rows) or dlq < len(MALFORMED)) and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=500).items():
                for record in records:
                    if tp.topic == topics.dlq:
                        dlq += record.key == f"demo-{run}-bad".encode()
                        continue
                    result = json.loads(record.value)
                    if result["id"] not in gold or result["id"] in seen:
                        continue
                    seen.add(result["id"])
                    correct += result["label"] == gold[result["id"]]
                    review += result["review"]
                    bar.update()
            elapsed = time.perf_counter() - started
            bar.set_postfix(msg_s=f"{len(seen) / elapsed:.0f}", accuracy=f"{correct / max(len(seen), 1):.3f}",
                            review=review, dlq=dlq)
    consumer.close()
    return DemoSummary(task, len(rows), len(seen), correct, review, dlq, time.perf_counter() - started)


def run_demo(task: str, *, port: int, limit: int | None, keep_running: bool) -> DemoSummary:
    """Train a quick model if none exists, start broker and service, stream, summarise, clean up."""
    from pipelines.classification import rename_labels
    from pipelines.common.data import read_examples
    from pipelines.tasks import dataset_for
    from shared.runtime import read_model_info
    from shared.settings import default_model_dir
    from slm import local_kafka

    model_dir = default_model_dir(task)
    try:
        read_model_info(model_dir)
    except SlmError:
        logger.info("no %s model at %s: training a quick one (about a minute)", task, model_dir)
        subprocess.run([str(Path(sys.executable).with_name("slm")), "train", task, "--quick"], check=True)
    dataset = dataset_for(task)
    examples = rename_labels(read_examples(dataset.test_file, dataset.columns), dataset.label_names)
    rows = [(ex.text, ex.label) for ex in examples][:limit]
    cfg = local_kafka.BrokerConfig.from_env()
    service: subprocess.Popen | None = None
    local_kafka.up(cfg)
    try:
        bootstrap = local_kafka.bootstrap(cfg)
        service = _start_service(task, model_dir, port, bootstrap, cfg.cache_dir / f"{task}-service.log")
        summary = stream_test_set(task, bootstrap, rows)
        summary.service_pid = service.pid if keep_running else None
    except BaseException:
        keep_running = False  # a failed or interrupted demo leaves nothing behind
        raise
    finally:
        if not keep_running:
            if service is not None:
                _stop_service(service)
            local_kafka.down(cfg)
    return summary
