"""``python -m bench`` (``slm-bench``): each task service against its model's own limit and its peers.

The benchmarks' own entry point: ``slm`` never imports ``bench``; ``bench`` uses ``slm`` (the
local broker, the service processes) like any other caller.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from pipelines.tasks import TASKS
from shared.console import clean_errors, configure_logging

__all__ = ["main"]


@click.command()
@click.option("--task", "tasks", type=click.Choice(TASKS), multiple=True,
              help="Only this task (repeat for several; default sentiment, the task with the targets).")
@click.option("--quick", is_flag=True, help="Fewer points and shorter runs: a smoke run of a few minutes.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Where results.json, results.md and rest.png go (default .cache/bench/<time>).")
@click.option("--kafka", "bootstrap", default=None,
              help="Broker to use (default: the local one, started if needed).")
@click.option("--peers/--no-peers", default=True, show_default=True,
              help="Also run the peers (FastAPI + pipeline, BentoML torch, Ray Serve @serve.batch) and the "
                   "torch limit, for the classification tasks.")
@click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level.")
@clean_errors
def main(tasks: tuple[str, ...], quick: bool, out: Path | None, bootstrap: str | None, peers: bool,
         verbose: bool) -> None:
    """Measure each task service against its model's own limit and its peers: REST, Kafka, cold start, memory."""
    from bench.harness import BenchPlan, run_bench
    from shared.settings import REPO_ROOT

    configure_logging(verbose)
    if bootstrap is None:
        from devtools import local_kafka

        cfg = local_kafka.BrokerConfig.from_env()
        local_kafka.up(cfg)
        bootstrap = local_kafka.bootstrap(cfg)
    out = out or REPO_ROOT / ".cache" / "bench" / time.strftime("%Y%m%dT%H%M%S")
    run_bench(BenchPlan.for_run(list(tasks or ("sentiment",)), out, bootstrap, quick, peers))
    click.echo((out / "results.md").read_text())
    click.echo(f"results: {out}")
