"""The benchmark's arithmetic: percentiles, ratios to the model's limit, and the targets of issue 26.

Pure functions over the result dictionaries :mod:`bench.harness` builds, so that they are tested
without services. The yardsticks, both measured in the same run as the service:

- the **best limit**: items/s of the int8 model alone, tokenization included, at its best
  length-sorted run shape (``result["limit_int8"]["items_per_s"]``); every throughput is given
  as a ratio to it;
- the **batch-1 time per item**: milliseconds per item of the same model, one item per run
  (``result["limit_int8"]["batch1_ms"]``); every latency is given as a multiple of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TARGETS", "Target", "figure_rows", "percentiles", "ratios", "rest_at", "target_rows"]


def percentiles(values_ms: list[float]) -> dict:
    """p50, p95 and p99 of latencies in ms, rounded to 0.01 (None for no values)."""
    if not values_ms:
        return {"p50": None, "p95": None, "p99": None}
    p50, p95, p99 = np.percentile(values_ms, [50, 95, 99])
    return {"p50": round(float(p50), 2), "p95": round(float(p95), 2), "p99": round(float(p99), 2)}


def rest_at(result: dict, concurrency: int) -> dict:
    """The single-item REST point at ``concurrency`` (empty when it was not measured)."""
    return next((r for r in result["rest"]["single"] if r["concurrency"] == concurrency), {})


def _ratio(value: float | None, by: float | None, digits: int = 2) -> float | None:
    return round(value / by, digits) if value is not None and by else None


def ratios(result: dict, concurrency: int = 32) -> dict:
    """Throughputs over the best limit and over each peer's, latencies over the batch-1 time.

    Keys: ``rest_c{N}_over_limit`` for every single-item concurrency measured, ``kafka_over_limit``,
    ``rest_c1_time_over_batch1`` (REST c=1 time per request, 1000 / items/s, over the batch-1 time
    per item), ``rest_p99_at_half_over_batch1`` and ``kafka_p99_at_half_over_batch1`` (p99 under
    paced load at 50% of the measured maximum), and ``rest_c{concurrency}_over_<peer>``.
    """
    limit = result["limit_int8"]["items_per_s"]
    batch1_ms = result["limit_int8"].get("batch1_ms")
    out = {f"rest_c{r['concurrency']}_over_limit": _ratio(r["items_per_s"], limit) for r in result["rest"]["single"]}
    out["kafka_over_limit"] = _ratio(result["kafka"]["full_speed"]["items_per_s"], limit)
    c1 = rest_at(result, 1).get("items_per_s")
    if batch1_ms:
        out["rest_c1_time_over_batch1"] = _ratio(1000 / c1 if c1 else None, batch1_ms)
        out["rest_p99_at_half_over_batch1"] = _ratio(result["rest"].get("half_load", {}).get("p99"), batch1_ms, 1)
        out["kafka_p99_at_half_over_batch1"] = _ratio(result["kafka"]["half_speed"].get("p99"), batch1_ms, 1)
    ours = rest_at(result, concurrency).get("items_per_s")
    for name, peer in result.get("peers", {}).items():
        out[f"rest_c{concurrency}_over_{name}"] = _ratio(ours, rest_at(peer, concurrency).get("items_per_s"))
    return out


@dataclass(frozen=True)
class Target:
    """One of the issue's targets: a key of :func:`ratios` (or ``rss_mb``), a bound and its direction.

    Args:
        figure (`str`): how results.md names it.
        key (`str`): the key in ``ratios(result)``, or ``rss_mb`` for the result's own field.
        bound (`float`): the target.
        at_least (`bool`): True when the value must reach the bound, False when it must stay under it.
    """

    figure: str
    key: str
    bound: float
    at_least: bool

    def met(self, value: float | None) -> bool | None:
        if value is None:
            return None
        return value >= self.bound if self.at_least else value <= self.bound

    @property
    def text(self) -> str:
        return f"{'>=' if self.at_least else '<='} {self.bound:g}"


TARGETS = (
    Target("REST c=32 / best limit", "rest_c32_over_limit", 0.80, True),
    Target("Kafka / best limit", "kafka_over_limit", 0.90, True),
    Target("REST c=1 time per request / batch-1 time per item", "rest_c1_time_over_batch1", 1.3, False),
    Target("REST p99 at 50% of max rate / batch-1 time per item", "rest_p99_at_half_over_batch1", 10, False),
    Target("Kafka p99 at 50% of max rate / batch-1 time per item", "kafka_p99_at_half_over_batch1", 10, False),
    Target("RSS of the service (MB)", "rss_mb", 400, False),
    Target("REST c=32 / peer (a) c=32", "rest_c32_over_fastapi", 4, True),
)


def target_rows(result: dict) -> list[tuple[str, float | None, str, str]]:
    """``(figure, value, target, met)`` per target; ``met`` is yes, no or n/a (not measured).

    The peer row appears only when the peers ran.
    """
    values = {**ratios(result), "rss_mb": result.get("rss_mb")}
    rows = []
    for target in TARGETS:
        if target.key not in values:
            continue
        met = target.met(values[target.key])
        rows.append((target.figure, values[target.key], target.text, {True: "yes", False: "no", None: "n/a"}[met]))
    return rows


def figure_rows(result: dict) -> list[tuple[str, float | None, float | None, float | None, float | None, float | None]]:
    """``(figure, items/s, over the best limit, p50 ms, p99 ms, p99 over the batch-1 time)`` per measured point.

    The limits first (batch 1 and the best shape), then REST single items by concurrency and
    at half the maximum REST rate, then Kafka at full speed and at half of it.
    """
    limit = result["limit_int8"]
    best, batch1_ms = limit["items_per_s"], limit.get("batch1_ms")

    def row(name: str, point: dict) -> tuple:
        return (name, point.get("items_per_s"), _ratio(point.get("items_per_s"), best), point.get("p50"),
                point.get("p99"), _ratio(point.get("p99"), batch1_ms, 1))

    rows = []
    if batch1_ms:
        batch1 = limit.get("by_batch", {}).get("1") or round(1000 / batch1_ms, 1)
        rows.append(("model alone, batch 1", batch1, _ratio(batch1, best), None, None, None))
    rows.append((f"model alone, best shape ({limit['best_batch']})", best, 1.0, None, None, None))
    rows += [row(f"REST c={r['concurrency']}", r) for r in result["rest"]["single"]]
    half = result["rest"].get("half_load")
    if half:
        rows.append(row(f"REST paced at {half['rate']:g}/s (50% of max)", half))
    rows.append(row("Kafka, produced at once", result["kafka"]["full_speed"]))
    kafka_half = result["kafka"]["half_speed"]
    rows.append(row(f"Kafka paced at {kafka_half.get('rate', 0):g}/s (50% of max)", kafka_half))
    return rows
