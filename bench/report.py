"""``results.md`` and ``rest.png``: the figures of :mod:`bench.harness`'s results, as tables and plots."""

from __future__ import annotations

from pathlib import Path

from bench.figures import figure_rows, rest_at, target_rows

__all__ = ["PEER_TITLES", "results_table", "write_plots"]

PEER_TITLES = {"fastapi": "peer (a) FastAPI + transformers pipeline, torch fp32",
               "bentoml": "peer (b) BentoML torch service, adaptive batching",
               "ray": "peer (c) Ray Serve @serve.batch, torch fp32"}

YARDSTICKS = ("Throughputs are given over the **best limit** (the int8 model alone, tokenization included, at its "
              "best length-sorted run shape) and latencies as multiples of the model's **batch-1 time per item**, "
              "both measured in the same run. Response cache off (`SLM_CACHE_SIZE=0`).")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def _table(head: list[str], rows: list) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
            *["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]]


def _summary_table(results: list[dict]) -> list[str]:
    rows = []
    for r in results:
        limit = r["limit_int8"]
        c1, c32 = rest_at(r, 1), rest_at(r, 32)
        kafka = r["kafka"]["full_speed"]["items_per_s"]
        rows.append([r["task"], f"{limit['items_per_s']} ({limit['best_batch']})", limit.get("batch1_ms"),
                     c1.get("items_per_s"), c32.get("items_per_s"), r["ratios"].get("rest_c32_over_limit"),
                     kafka, r["ratios"].get("kafka_over_limit"), r["rest"].get("half_load", {}).get("p99"),
                     r["kafka"]["half_speed"].get("p99"), r["cold_start_s"], r["rss_mb"], r["tokens_per_item"],
                     round(kafka * r["tokens_per_item"])])
    return _table(["task", "best limit items/s (shape)", "batch-1 ms/item", "REST c=1", "REST c=32",
                   "REST c=32 / limit", "Kafka items/s", "Kafka / limit", "REST p99 at 50% (ms)",
                   "Kafka p99 at 50% (ms)", "cold start (s)", "RSS (MB)", "tokens/item", "Kafka tokens/s"], rows)


def _limits_line(r: dict) -> str:
    shapes = ", ".join(f"{'batch ' if name.isdigit() else ''}{name}: {value}"
                       for name, value in r["limit_int8"]["by_batch"].items())
    line = ("The int8 model alone, tokenization included, items/s by run shape (batch N: arrival order; sorted N/T: "
            f"runs of at most N items and T padded tokens cut from texts sorted by length): {shapes}.")
    others = [f"{title} {r[key]['items_per_s']} ({r[key]['best_batch']})"
              for key, title in (("limit_fp32_onnx", "fp32 ONNX"), ("limit_fp32_torch", "the peers' torch model"))
              if key in r]
    return line + (" Best: " + ", ".join(others) + "." if others else "")


def _systems_table(r: dict, concurrencies: list[int]) -> list[str]:
    """The service and each peer: REST items/s by concurrency and ratios."""
    limit = r["limit_int8"]["items_per_s"]
    ours = rest_at(r, 32).get("items_per_s")
    batch16_c = concurrencies[:2][-1]  # 16-item requests run at the first two concurrencies
    rows = []
    for name, system in [("slm serve (this service)", r),
                         *[(PEER_TITLES[k], v) for k, v in r.get("peers", {}).items()]]:
        c32 = rest_at(system, 32).get("items_per_s")
        batch16 = next((b["items_per_s"] for b in system["rest"]["batch16"] if b["concurrency"] == batch16_c), None)
        rows.append([name, *[rest_at(system, c).get("items_per_s") for c in concurrencies],
                     rest_at(system, 32).get("p99"), batch16, system["cold_start_s"], system["rss_mb"],
                     f"{(c32 or 0) / limit:.2f}", f"{ours / c32:.2f}" if ours and c32 else None])
    return _table(["system", *[f"c={c}" for c in concurrencies], "p99 c=32 (ms)", f"16-item c={batch16_c}",
                   "cold start (s)", "RSS (MB)", "c=32 / int8 limit", "service c=32 / this"], rows)


def _task_section(r: dict, concurrencies: list[int]) -> list[str]:
    lines = [f"## {r['task']}", "", _limits_line(r), "",
             *_table(["figure", "items/s", "/ best limit", "p50 (ms)", "p99 (ms)", "p99 / batch-1 time"],
                     figure_rows(r)),
             "", "Targets (issue 26):", "", *_table(["figure", "value", "target", "met"], target_rows(r))]
    if r.get("peers"):
        lines += ["", f"Against the peers ({r.get('peers_model', 'torch model')}):", "",
                  *_systems_table(r, concurrencies)]
    elif r.get("peers_skipped"):
        lines += ["", f"Peers: {r['peers_skipped']}"]
    return lines


def results_table(results: list[dict], concurrencies: list[int]) -> str:
    """``results.md``: a summary of every task, then per task its figures, its targets and its peers."""
    lines = [YARDSTICKS, "", *_summary_table(results)]
    for r in results:
        lines += ["", *_task_section(r, concurrencies)]
    return "\n".join(lines)


def write_plots(results: list[dict], out: Path) -> None:
    """``rest.png``: items/s and p50/p99 against concurrency, the service and its peers, per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 2, figsize=(11, 4 * len(results)), squeeze=False)
    for r, (ax_t, ax_l) in zip(results, axes):
        for name, system in [("slm serve", r), *r.get("peers", {}).items()]:
            points = system["rest"]["single"]
            xs = [p["concurrency"] for p in points]
            ax_t.plot(xs, [p["items_per_s"] for p in points], marker="o", label=name)
            ax_l.plot(xs, [p["p99"] for p in points], marker="o", label=f"{name} p99")
            ax_l.plot(xs, [p["p50"] for p in points], marker=".", linestyle="--", label=f"{name} p50")
        ax_t.axhline(r["limit_int8"]["items_per_s"], color="grey", linestyle=":", label="best limit")
        ax_l.set_yscale("log")
        for ax, ylabel in ((ax_t, f"{r['task']}: items/s"), (ax_l, f"{r['task']}: latency (ms)")):
            ax.set_xscale("log", base=2)
            ax.set_xlabel("concurrency (single-item REST requests)")
            ax.set_ylabel(ylabel)
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "rest.png", dpi=110)
    plt.close(fig)
