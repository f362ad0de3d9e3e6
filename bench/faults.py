"""Fault injection: a task service on a private broker, through the faults an operator's worst day brings.

    python -m bench.faults --model models/sentiment [--records 1500] [--rate 100] [--out reports/faults]

Everything runs on 127.0.0.1: the script starts its own Kafka broker (``devtools.local_kafka``, free
ports, a data folder under ``--out``) and ``slm serve <task>`` processes, and stops them all at
the end. Each scenario sends a bounded stream of tracked requests (ids ``<scenario>-<n>``) at a
fixed rate, injects its fault mid-stream, then waits (bounded) until every request is answered
or dead-lettered. Scenarios:

- ``kill9``: the service is killed with SIGKILL twice (no shutdown hook, no commit) and
  restarted at once as the same static member;
- ``broker``: the broker is killed with SIGKILL and restarted after ``--outage`` seconds;
  ``/readyz`` is sampled throughout;
- ``rebalance``: a second and a third instance join mid-stream, then the second stops (SIGTERM);
- ``poison``: malformed records among the good ones: not JSON, not UTF-8, a schema violation, a
  header key that is not UTF-8, a 2 MB value (gzip-compressed, as the broker takes it), an empty
  value.

Per scenario it prints sent, unique answered, lost (neither answered nor dead-lettered),
duplicates (answers beyond the first), DLQ records and the recovery times, and writes them to
``<out>/faults.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from devtools.service_process import ServiceProcess
from shared.kafka.clients import client_options
from shared.settings import REPO_ROOT

__all__ = ["ScenarioResult", "main", "run_faults"]

logger = logging.getLogger("bench.faults")

TASK = "sentiment"


@dataclass
class ScenarioResult:
    """What one scenario measured (times in seconds)."""

    name: str
    sent: int = 0
    unique_answered: int = 0
    lost: int = 0
    duplicates: int = 0
    dlq: int = 0
    dlq_types: dict[str, int] = field(default_factory=dict)
    recovery_s: list[float] = field(default_factory=list)  # fault over -> first new answer
    ready_to_answer_s: list[float] = field(default_factory=list)  # /readyz 200 -> first new answer
    unready_s: float | None = None  # broker down -> /readyz 503 (broker scenario)
    longest_gap_s: float = 0.0  # longest time without any answer while requests were waiting
    duration_s: float = 0.0
    note: str = ""


class Tail(threading.Thread):
    """Reads a topic from the beginning and stamps each record's arrival (monotonic)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True, name=f"tail-{topic}")
        self.bootstrap, self.topic = bootstrap, topic
        self.records: list[tuple[float, object]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        from kafka import KafkaConsumer

        consumer = None
        while not self._halt.is_set():
            try:
                if consumer is None:
                    consumer = KafkaConsumer(self.topic, **client_options(self.bootstrap), group_id=None,
                                             auto_offset_reset="earliest", enable_auto_commit=False,
                                             metadata_max_age_ms=2000,
                                             enable_incremental_fetch_sessions=False)
                for batch in consumer.poll(timeout_ms=200).values():
                    now = time.monotonic()
                    self.records.extend((now, record) for record in batch)
            except Exception as exc:  # noqa: BLE001 - the broker scenario takes it away; keep reading after
                logger.debug("tail %s: %s", self.topic, exc)
                time.sleep(0.5)
        if consumer is not None:
            consumer.close()

    def first_after(self, moment: float, which=None) -> float | None:
        return next((t for t, r in list(self.records) if t >= moment and (which is None or which(r))), None)

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


class Stream(threading.Thread):
    """Produces ``count`` tracked requests at ``rate`` per second (plus the scenario's bad records)."""

    def __init__(self, bootstrap: str, topic: str, name: str, count: int, rate: float,
                 bad: list[tuple[int, bytes | None, bytes | None, list]] | None = None) -> None:
        super().__init__(daemon=True, name=f"stream-{name}")
        self.bootstrap, self.topic, self.name_, self.count, self.rate = bootstrap, topic, name, count, rate
        self.bad = {at: (key, value, headers) for at, key, value, headers in (bad or [])}
        self.sent_ids: list[str] = []
        self.sent_bad = 0
        self.error: str = ""
        self.done = threading.Event()

    def run(self) -> None:
        try:
            self._send_all()
        except Exception as exc:  # noqa: BLE001 - reported with the scenario's figures
            self.error = f"{type(exc).__name__}: {exc}"
            logger.error("stream %s stopped: %s", self.name_, self.error)
        finally:
            self.done.set()

    def _send_all(self) -> None:
        from kafka import KafkaProducer

        # gzip: real producers compress, and the 2 MB poison value fits the broker's limit only compressed.
        producer = KafkaProducer(**client_options(self.bootstrap), acks="all", linger_ms=5, retries=1_000_000,
                                 delivery_timeout_ms=300_000, max_request_size=4_000_000, compression_type="gzip")
        started = time.monotonic()
        futures = []
        for i in range(self.count):
            pause = started + i / self.rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            if i in self.bad:
                key, value, headers = self.bad[i]
                futures.append(producer.send(self.topic, key=key, value=value, headers=headers))
                producer.flush()  # a batch of its own: what follows stays readable
                self.sent_bad += 1
            request_id = f"{self.name_}-{i}"
            futures.append(producer.send(self.topic, key=request_id.encode(), value=json.dumps(
                {"id": request_id, "text": f"Company {i % 97} shares move after results"}).encode()))
            self.sent_ids.append(request_id)
        producer.flush()
        failed = sum(1 for f in futures if f.failed())
        if failed:
            logger.warning("stream %s: %d sends failed", self.name_, failed)
        producer.close()


class _RawHeaderKey(str):
    """A header key sent as raw bytes that are not UTF-8 (as ``kcat -H $'\\xff\\xfe=v'`` does)."""

    def __new__(cls, raw: bytes):
        key = super().__new__(cls, "raw")
        key.raw = raw
        return key

    def encode(self, *args, **kwargs) -> bytes:
        return self.raw


def _measure(result: ScenarioResult, stream: Stream, results: Tail, dlq: Tail, deadline: float,
             settle_s: float = 2.0) -> None:
    """Wait (until ``deadline``) for every request to be answered or dead-lettered, then count."""
    expected = set(stream.sent_ids)
    while time.monotonic() < deadline:
        answered = {json.loads(r.value)["id"] for _, r in list(results.records)}
        if stream.done.is_set() and expected <= answered and len(dlq.records) >= stream.sent_bad:
            break
        time.sleep(0.5)
    time.sleep(settle_s)  # late duplicates still in flight
    ids = [json.loads(r.value)["id"] for _, r in list(results.records)]
    answered = set(ids) & expected
    result.sent = len(expected) + stream.sent_bad
    result.unique_answered = len(answered)
    result.duplicates = len([i for i in ids if i in expected]) - len(answered)
    result.dlq = len(dlq.records)
    for _, record in dlq.records:
        kind = dict(record.headers).get("error.type", b"?").decode()
        result.dlq_types[kind] = result.dlq_types.get(kind, 0) + 1
    result.lost = len(expected - answered) + max(0, stream.sent_bad - result.dlq)
    arrivals = sorted(t for t, r in list(results.records) if json.loads(r.value)["id"] in expected)
    result.longest_gap_s = round(max((b - a for a, b in zip(arrivals, arrivals[1:])), default=0.0), 1)
    if stream.error:
        result.note += f"; the stream stopped early: {stream.error}"


class Broker:
    """A private single-node broker for the run, which the broker scenario kills and restarts."""

    def __init__(self, data_dir: Path) -> None:
        from devtools import local_kafka

        self.kafka = local_kafka
        self.cfg = local_kafka.BrokerConfig.on_free_ports(data_dir)
        self.bootstrap = local_kafka.bootstrap(self.cfg)

    def up(self) -> None:
        self.kafka.up(self.cfg, timeout=120)

    def kill(self) -> None:
        """SIGKILL, as a crashed broker: no controlled shutdown."""
        pid = int(self.cfg.pid_file.read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        try:
            os.waitpid(pid, 0)  # our child (local_kafka.up started it): reap it, or it lingers as a zombie
        except ChildProcessError:
            pass
        self.kafka.down(self.cfg)  # removes the stale pid file

    def down(self) -> None:
        self.kafka.down(self.cfg)


def _service_env(bootstrap: str, prefix: str, member: str) -> dict[str, str]:
    return {"SLM_KAFKA_BOOTSTRAP": bootstrap, "SLM_KAFKA_TOPIC_PREFIX": prefix, "SLM_KAFKA_GROUP_ID": f"{prefix}slm-{TASK}",
            "SLM_KAFKA_GROUP_INSTANCE_ID": member, "SLM_KAFKA_MAX_BATCH": "32", "SLM_KAFKA_PARTITIONS": "4",
            "OTEL_SDK_DISABLED": "true", "SLM_ONNX_THREADS": "1",
            # The broker scenario measures the opt-in readiness drop (the default keeps REST ready).
            "SLM_KAFKA_UNREADY_AFTER_S": "10"}


@dataclass
class _Scene:
    """What every scenario starts with: its result, topics and clock, then its first service and the tails."""

    result: ScenarioResult
    topics: object
    started: float
    service: ServiceProcess | None = None
    results: Tail | None = None
    dlq: Tail | None = None


class Run:
    def __init__(self, model: Path, out: Path, records: int, rate: float, outage_s: float, timeout_s: float) -> None:
        self.model, self.out, self.records, self.rate = model, out, records, rate
        self.outage_s, self.timeout_s = outage_s, timeout_s
        self.broker = Broker(out / "kafka")

    def _topics(self, name: str):
        from shared.kafka import TaskTopics

        return TaskTopics(TASK, f"f{uuid.uuid4().hex[:6]}-{name}.")

    def _start(self, topics, member: str, name: str) -> tuple[ServiceProcess, float]:
        """A service on the run's broker, and the moment it was ready."""
        service = ServiceProcess(TASK, self.model, self.out / f"{name}-{member}.log",
                                 env=_service_env(self.broker.bootstrap, topics.prefix, member))
        return service, service.wait_ready().ready_at

    def _tails(self, topics) -> tuple[Tail, Tail]:
        results, dlq = Tail(self.broker.bootstrap, topics.results), Tail(self.broker.bootstrap, topics.dlq)
        results.start()
        dlq.start()
        return results, dlq

    def _open(self, name: str, rate: float | None = None, bad=()) -> tuple[_Scene, Stream]:
        """A scenario's start: its topics, a first service, the result and DLQ tails, and the stream running."""
        scene = _Scene(ScenarioResult(name), self._topics(name), time.monotonic())
        scene.service, _ = self._start(scene.topics, "svc-0", name)
        scene.results, scene.dlq = self._tails(scene.topics)
        stream = Stream(self.broker.bootstrap, scene.topics.requests, name, self.records, rate or self.rate,
                        bad=list(bad))
        stream.start()
        return scene, stream

    def _until_sent(self, stream: Stream, fraction: float) -> None:
        while len(stream.sent_ids) < self.records * fraction:
            time.sleep(0.1)

    def _finish(self, result, stream, results, dlq, started, services) -> ScenarioResult:
        stream.join(self.timeout_s)
        _measure(result, stream, results, dlq, time.monotonic() + self.timeout_s)
        for service in services:
            service.stop()
        results.stop()
        dlq.stop()
        result.duration_s = round(time.monotonic() - started, 1)
        return result

    def kill9(self) -> ScenarioResult:
        scene, stream = self._open("kill9")
        result, topics, service, results = scene.result, scene.topics, scene.service, scene.results
        for fraction in (0.3, 0.6):
            self._until_sent(stream, fraction)
            service.kill()
            restarted, sent_before = time.monotonic(), len(stream.sent_ids)
            service, ready = self._start(topics, "svc-0", "kill9")
            # The first answer to a request sent after the kill: the killed process's last answers
            # may still be read after the restart.
            first = _wait_first(results, restarted, self.timeout_s, _sent_from(sent_before))
            if first is not None:
                result.recovery_s.append(round(first - restarted, 1))
                result.ready_to_answer_s.append(round(max(0.0, first - ready), 1))
        result.note = "two SIGKILLs of the service, each restarted at once as the same static member"
        return self._finish(result, stream, results, scene.dlq, scene.started, [service])

    def broker_outage(self) -> ScenarioResult:
        scene, stream = self._open("broker")
        result, service, results = scene.result, scene.service, scene.results
        self._until_sent(stream, 0.3)
        down_at = time.monotonic()
        self.broker.kill()
        sent_before = len(stream.sent_ids)
        unready_at = None
        while time.monotonic() - down_at < self.outage_s:
            if unready_at is None and not service.ready():
                unready_at = time.monotonic()
            time.sleep(0.5)
        self.broker.up()
        back = time.monotonic()
        # Answers already produced before the kill may still arrive late; recovery counts the first
        # answer to a request sent after the broker went down.
        first = _wait_first(results, back, self.timeout_s, _sent_from(sent_before))
        ready_again = _wait(service.ready, self.timeout_s)
        result.unready_s = round(unready_at - down_at, 1) if unready_at is not None else None
        if first is not None:
            result.recovery_s.append(round(first - back, 1))
            if ready_again is not None:
                result.ready_to_answer_s.append(round(max(0.0, first - ready_again), 1))
        result.note = f"broker SIGKILLed for {self.outage_s:.0f}s mid-stream, then restarted"
        return self._finish(result, stream, results, scene.dlq, scene.started, [service])

    def rebalance(self) -> ScenarioResult:
        # A third of the rate: the stream must outlast two instance starts and a stop.
        scene, stream = self._open("rebalance", rate=self.rate / 3)
        result, topics, first, results = scene.result, scene.topics, scene.service, scene.results
        self._until_sent(stream, 0.25)
        second, _ = self._start(topics, "svc-1", "rebalance")
        self._until_sent(stream, 0.5)
        third, _ = self._start(topics, "svc-2", "rebalance")
        self._until_sent(stream, 0.75)
        stopped, sent_before = time.monotonic(), len(stream.sent_ids)
        second.stop()  # graceful: commit, leave the group
        answer = _wait_first(results, stopped, self.timeout_s, _sent_from(sent_before))
        if answer is not None:
            result.recovery_s.append(round(answer - stopped, 1))
        result.note = "a second and a third instance join mid-stream, then the second stops with SIGTERM"
        return self._finish(result, stream, results, scene.dlq, scene.started, [first, third])

    def poison(self) -> ScenarioResult:
        step = max(1, self.records // 8)
        bad = [(step * 1, b"bad-json", b"{not json", []),
               (step * 2, b"bad-utf8", b"\xff\xfe\xfd", []),
               (step * 3, b"bad-schema", b'{"id": "no-text"}', []),
               (step * 4, b"bad-header", b'{"text": "fine"}', [(_RawHeaderKey(b"\xff\xfe"), b"v")]),
               (step * 5, b"too-large", json.dumps({"text": "x" * 2_000_000}).encode(), []),
               (step * 6, None, b"", [])]
        scene, stream = self._open("poison", bad=bad)
        scene.result.note = ("not JSON, not UTF-8, schema, a header key that is not UTF-8, a 2 MB value, "
                             "an empty value, among the good ones")
        return self._finish(scene.result, stream, scene.results, scene.dlq, scene.started, [scene.service])


def _sent_from(index: int):
    """Selects the answers to requests number ``index`` and later."""
    return lambda record: int(json.loads(record.value)["id"].rsplit("-", 1)[1]) >= index


def _wait(condition, timeout: float) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        time.sleep(0.2)
    return None


def _wait_first(tail: Tail, moment: float, timeout: float, which=None) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        first = tail.first_after(moment, which)
        if first is not None:
            return first
        time.sleep(0.1)
    return None


SCENARIOS = ("kill9", "broker", "rebalance", "poison")


def run_faults(model: Path, out: Path, records: int = 1500, rate: float = 100.0, outage_s: float = 30.0,
               timeout_s: float = 120.0, scenarios=SCENARIOS) -> list[ScenarioResult]:
    """Run the scenarios on a private broker; every process started here is stopped before returning."""
    out.mkdir(parents=True, exist_ok=True)
    run = Run(model, out, records, rate, outage_s, timeout_s)
    run.broker.up()
    done: list[ScenarioResult] = []
    try:
        for name in scenarios:
            logger.info("scenario %s", name)
            done.append({"kill9": run.kill9, "broker": run.broker_outage, "rebalance": run.rebalance,
                         "poison": run.poison}[name]())
            logger.info("%s", json.dumps(asdict(done[-1])))
    finally:
        run.broker.down()
    (out / "faults.json").write_text(json.dumps([asdict(r) for r in done], indent=2) + "\n")
    return done


def table(results: list[ScenarioResult]) -> str:
    lines = ["| scenario | sent | unique answered | lost | duplicates | DLQ | recovery s | /readyz to answer s | "
             "broker down to 503 s | longest gap s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        dlq = f"{r.dlq}" + (f" ({', '.join(f'{k} {v}' for k, v in sorted(r.dlq_types.items()))})" if r.dlq else "")
        lines.append(f"| {r.name} | {r.sent} | {r.unique_answered} | {r.lost} | {r.duplicates} | {dlq} | "
                     f"{', '.join(map(str, r.recovery_s)) or '-'} | {', '.join(map(str, r.ready_to_answer_s)) or '-'} | "
                     f"{r.unready_s if r.unready_s is not None else '-'} | {r.longest_gap_s} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="model folder of the sentiment task")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "reports" / "faults")
    parser.add_argument("--records", type=int, default=1500, help="tracked requests per scenario")
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second")
    parser.add_argument("--outage", type=float, default=30.0, help="seconds the broker stays down")
    parser.add_argument("--timeout", type=float, default=120.0, help="longest wait of each step")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="run only these (repeatable)")
    args = parser.parse_args(argv)
    if args.records < 10 or args.records > 100_000:
        parser.error("--records must be between 10 and 100000")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    results = run_faults(args.model, args.out, args.records, args.rate, args.outage, args.timeout,
                         tuple(args.scenario or SCENARIOS))
    print(table(results))


if __name__ == "__main__":
    main()
