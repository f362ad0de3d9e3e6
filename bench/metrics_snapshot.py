"""What an operator sees on ``/metrics``: one task service under mixed traffic, scraped every
second, drawn as the dashboard's main panels (docs/metrics.png, shown in docs/operating.md).

The sentiment service (release model) gets its own test set over Kafka and REST, with a few
malformed records, then a shifted stream (helpdesk tickets) over Kafka, starting with a burst: the lag rises and
falls, and so does the drift index, which stays up.

    slm kafka up && python -m bench.metrics_snapshot [--rate 30] [--phase-s 60] [--out docs/metrics.png]
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import random
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from bench.harness import _started
from devtools.service_process import ServiceProcess
from pipelines.labelled_rows import load_rows
from shared.settings import default_model_dir

TASK = "sentiment"
QUANTILES = (0.5, 0.99)


def scrape(url: str) -> list:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples
            if sample.name.startswith("slm_")]


class Scraper(threading.Thread):
    """``/metrics`` every ``interval`` seconds until stopped: [(seconds since start, samples)]."""

    def __init__(self, url: str, interval: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.url, self.interval = url, interval
        self.scrapes: list[tuple[float, list]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        start = time.monotonic()
        while not self.stopped.wait(self.interval):
            self.scrapes.append((time.monotonic() - start, scrape(self.url)))


def paced(rate: float, seconds: float):
    """Yield at ``rate`` per second for ``seconds`` (a load generator's clock, not synchronisation)."""
    start = time.monotonic()
    for n in itertools.count():
        due = start + n / rate
        if due - start >= seconds:
            return
        time.sleep(max(0.0, due - time.monotonic()))
        yield n


def produce_paced(producer: KafkaProducer, topic: str, texts: list[str], rate: float, seconds: float,
                  bad_every: int = 0) -> None:
    for n in paced(rate, seconds):
        if bad_every and n % bad_every == bad_every - 1:
            value = b"not json" if (n // bad_every) % 2 else json.dumps({"id": f"bad-{n}"}).encode()
        else:
            value = json.dumps({"id": uuid.uuid4().hex, "text": texts[n % len(texts)]}).encode()
        producer.send(topic, value)
    producer.flush()


def call_rest_paced(url: str, texts: list[str], rate: float, seconds: float) -> None:
    with httpx.Client(timeout=30) as client:
        for n in paced(rate, seconds):
            client.post(f"{url}/predict", json={"items": [{"text": texts[n % len(texts)]}]})


def series(scrapes, name: str, group_by: str | None = None, **labels) -> dict[str, list[tuple[float, float]]]:
    """Per value of ``group_by`` (or one series ``""``): [(t, summed value)] of matching samples."""
    out: dict[str, list] = {}
    for t, samples in scrapes:
        sums: dict[str, float] = {}
        for s in samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                key = s.labels.get(group_by, "") if group_by else ""
                sums[key] = sums.get(key, 0.0) + s.value
        for key, value in sums.items():
            out.setdefault(key, []).append((t, value))
    return out


def rate_of(points: list[tuple[float, float]], window: int = 5) -> list[tuple[float, float]]:
    return [(t1, (v1 - v0) / (t1 - t0)) for (t0, v0), (t1, v1) in zip(points, points[window:]) if t1 > t0]


def quantile_of(scrapes, name: str, q: float, window: int = 5, **labels) -> list[tuple[float, float]]:
    """The q-quantile of a histogram's observations within each sliding ``window`` of scrapes."""
    buckets = []
    for t, samples in scrapes:
        counts: dict[float, float] = {}
        for s in samples:
            if s.name == f"{name}_bucket" and all(s.labels.get(k) == v for k, v in labels.items()):
                bound = float(s.labels["le"])
                counts[bound] = counts.get(bound, 0.0) + s.value
        buckets.append((t, sorted(counts.items())))
    out = []
    for (_, before), (t, after) in zip(buckets, buckets[window:]):
        if not after:
            continue
        earlier = dict(before)
        delta = [(bound, count - earlier.get(bound, 0.0)) for bound, count in after]
        total = delta[-1][1]
        if total <= 0:
            continue
        previous = 0.0
        for bound, cumulative in delta:
            if cumulative >= q * total:
                out.append((t, bound if bound != float("inf") else previous))
                break
            previous = bound
    return out


def plot(scrapes, shift_at: float, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(16, 8.5))
    panels = [
        ("Requests/s by path", {path: rate_of(p) for path, p in series(scrapes, "slm_requests_total", "path").items()}),
        ("Results, review, DLQ per second", {
            "results": rate_of(series(scrapes, "slm_results_total").get("", [])),
            "review": rate_of(series(scrapes, "slm_review_total").get("", [])),
            **{f"dlq {k}": rate_of(p) for k, p in series(scrapes, "slm_dlq_total", "error_type").items()}}),
        ("End-to-end latency (ms, bucket bound)", {
            f"p{int(q * 100)} {path}": quantile_of(scrapes, "slm_request_latency_milliseconds", q, path=path)
            for q in QUANTILES for path in ("rest", "kafka")}),
        ("Predictions/s by label", {label: rate_of(p)
                                    for label, p in series(scrapes, "slm_predictions_total", "label").items()}),
        ("Consumer lag by partition", series(scrapes, "slm_kafka_lag", "partition")),
        ("Drift: population-stability index", series(scrapes, "slm_drift_psi", "feature")),
    ]
    for ax, (title, lines) in zip(axes.flat, panels):
        for label, points in sorted(lines.items()):
            if points:
                ax.plot([t for t, _ in points], [v for _, v in points], label=label or title)
        ax.axvline(shift_at, color="grey", linestyle=":", linewidth=1)
        ax.set_title(title)
        ax.set_xlabel("seconds")
        ax.legend(fontsize=7, loc="upper left")
    axes.flat[2].set_yscale("log")  # the burst's seconds beside the steady state's milliseconds
    axes.flat[5].axhline(0.25, color="red", linestyle="--", linewidth=0.8)
    axes.flat[5].axhline(0.1, color="orange", linestyle="--", linewidth=0.8)
    fig.suptitle(f"slm-{TASK} /metrics, scraped every second: test set over Kafka and REST, "
                 "then helpdesk tickets over Kafka (dotted line)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--rate", type=float, default=30.0, help="Kafka records per second")
    parser.add_argument("--phase-s", type=float, default=60.0, help="Seconds of each phase")
    parser.add_argument("--burst", type=int, default=2000, help="Records sent at once when the stream shifts")
    parser.add_argument("--out", type=Path, default=Path("docs/metrics.png"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.WARNING)

    # Shuffled: the test files are grouped, live traffic is not.
    own = [r["text"] for r in load_rows(TASK, None)[0]]
    shifted = [r["text"] for r in load_rows("helpdesk", None)[0]]
    random.Random(0).shuffle(own)
    random.Random(0).shuffle(shifted)
    prefix = f"snap{uuid.uuid4().hex[:6]}."
    env = {"SLM_KAFKA_BOOTSTRAP": args.bootstrap, "SLM_KAFKA_TOPIC_PREFIX": prefix,
           "SLM_KAFKA_GROUP_ID": f"{prefix}slm-{TASK}", "SLM_DRIFT_WINDOW": "500", "OTEL_SDK_DISABLED": "false"}
    log_dir = Path(tempfile.mkdtemp(prefix="slm-metrics-"))
    service = _started(ServiceProcess(TASK, default_model_dir(TASK), log_dir / "serve.log", env=env))
    producer = KafkaProducer(bootstrap_servers=args.bootstrap, linger_ms=5)
    scraper = Scraper(service.url)
    try:
        scraper.start()
        rest = threading.Thread(target=call_rest_paced, args=(service.url, own, args.rate / 3, args.phase_s))
        rest.start()
        produce_paced(producer, f"{prefix}{TASK}.requests", own, args.rate, args.phase_s, bad_every=50)
        rest.join()
        shift_at = scraper.scrapes[-1][0] if scraper.scrapes else 0.0
        # A burst first: the lag it leaves, and how fast it is worked off.
        produce_paced(producer, f"{prefix}{TASK}.requests", shifted, args.rate * 100, args.burst / (args.rate * 100))
        produce_paced(producer, f"{prefix}{TASK}.requests", shifted, args.rate, args.phase_s)
        time.sleep(5)  # a few more scrapes after the last record (a bench's tail, not synchronisation)
    finally:
        scraper.stopped.set()
        scraper.join()
        producer.close()
        service.stop(90)
    plot(scraper.scrapes, shift_at, args.out)
    last = scraper.scrapes[-1][1]
    totals = {name: sum(s.value for s in last if s.name == name)
              for name in ("slm_requests_total", "slm_results_total", "slm_review_total", "slm_dlq_total")}
    drift = {s.labels["feature"]: round(s.value, 3) for s in last if s.name == "slm_drift_psi"}
    before = [samples for t, samples in scraper.scrapes if t <= shift_at]
    drift_before = {s.labels["feature"]: round(s.value, 3) for s in (before[-1] if before else [])
                    if s.name == "slm_drift_psi"}
    print(json.dumps({"totals": totals, "drift_before_shift": drift_before, "drift_after_shift": drift,
                      "png": str(args.out)}, indent=2))


if __name__ == "__main__":
    main()
