"""``python -m bench.profile --task sentiment``: where a service's CPU goes, under REST load and under a Kafka stream.

Starts ``slm serve <task>`` (response cache off, ``SLM_CACHE_SIZE=0``; Kafka on a topic prefix of
its own) and records it with py-spy (``--subprocesses``: ``slm serve`` execs ``bentoml serve``,
whose worker process serves; ``--threads``, so that the OS's per-thread CPU can be matched to
the samples; ``--native`` unless ``--no-native``, so that the Rust tokenizer and ONNX Runtime show
up under their own names rather than as the Python line that calls them), in two scenarios:

1. **rest**: single-item requests at concurrency 32 (``--concurrency``) for ``--seconds``, from
   the benchmark's load generator (:func:`bench.rest_load.rest_load`, in this process);
2. **kafka**: N records produced at once to ``<task>.requests`` and read back from
   ``<task>.results`` (:func:`bench.kafka_stream.stream_through_kafka`); N is ``--records``, or
   as many as the REST scenario served in ``--seconds``.

Each scenario is warmed up first (unrecorded). Writes to ``--out`` (default
``.cache/perf/<time>``): ``<scenario>.collapsed.txt`` (py-spy's raw stacks), ``<scenario>.svg``
(:mod:`bench.flamegraph`), ``table.md`` (where the CPU goes per item: see
:mod:`bench.profile_stacks` for the rule) and ``profile.json``. py-spy needs root (or ptrace rights).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import click

from pipelines.tasks import TASKS
from shared.console import clean_errors, configure_logging

__all__ = ["main", "record", "thread_cpu"]


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of every thread of the process ``pid`` and its descendants, by thread id."""
    import psutil

    out: dict[int, float] = {}
    root = psutil.Process(pid)
    for process in [root, *root.children(recursive=True)]:
        try:
            for thread in process.threads():
                out[thread.id] = thread.user_time + thread.system_time
        except psutil.NoSuchProcess:
            continue
    return out


def record(pid: int, path: Path, load: Callable[[], int], rate: int, native: bool) -> dict:
    """Record ``pid``'s tree with py-spy into ``path`` while ``load()`` runs; ``load`` returns the items served.

    Returns:
        ``items``, ``seconds`` (of the load), ``cpu_by_thread`` (CPU seconds over the load, by thread id).
    """
    from bench.profile_stacks import parse_collapsed

    spy_bin = Path(sys.executable).with_name("py-spy")
    command = [str(spy_bin), "record", "--pid", str(pid), "--subprocesses", "--threads", "--rate", str(rate),
               "--format", "raw", "--output", str(path), *(["--native"] if native else [])]
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)  # attached and sampling
    if spy.poll() is not None:
        raise click.ClickException(f"py-spy exited with {spy.returncode}: {spy.stderr.read().strip()} "
                                   "(it needs root, or ptrace rights over the service)")
    before, started = thread_cpu(pid), time.perf_counter()
    items = load()
    after, seconds = thread_cpu(pid), time.perf_counter() - started
    spy.send_signal(signal.SIGINT)
    try:
        _, errors = spy.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        spy.kill()
        raise click.ClickException(f"py-spy did not write {path} within 120 s") from None
    if not path.is_file() or not parse_collapsed(path.read_text().splitlines()):
        raise click.ClickException(f"py-spy wrote no samples to {path}: {errors.strip()}")
    cpu = {tid: round(after[tid] - before.get(tid, 0.0), 3) for tid in after}
    return {"items": items, "seconds": round(seconds, 2), "cpu_by_thread": cpu}


def _write_scenario(out: Path, name: str, title: str, recorded: dict, rate: int) -> list[str]:
    """``<name>.svg`` from ``<name>.collapsed.txt``; the scenario's section of ``table.md``."""
    from bench.flamegraph import flamegraph_svg
    from bench.profile_stacks import CpuWindow, Profile, parse_collapsed, profile_table

    stacks = parse_collapsed((out / f"{name}.collapsed.txt").read_text().splitlines())
    (out / f"{name}.svg").write_text(flamegraph_svg(stacks, title))
    profile = Profile(stacks, rate, recorded["items"], CpuWindow(recorded["cpu_by_thread"]))
    cpu_s = sum(recorded["cpu_by_thread"].values())
    return [f"## {title}", "", f"{recorded['items']} items in {recorded['seconds']} s "
            f"({recorded['items'] / recorded['seconds']:.1f} items/s); the service's processes used {cpu_s:.1f} "
            f"CPU-s ({cpu_s / recorded['seconds']:.2f} cores). Flame graph: [{name}.svg]({name}.svg).", "",
            *profile_table(profile), ""]


@click.command()
@click.option("--task", type=click.Choice(TASKS), default="sentiment", show_default=True)
@click.option("--seconds", type=float, default=20.0, show_default=True, help="Length of the REST scenario.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Where the SVGs, the stacks and table.md go (default .cache/perf/<time>; e.g. docs/perf/<name>).")
@click.option("--concurrency", type=int, default=32, show_default=True, help="REST clients.")
@click.option("--records", type=int, default=None,
              help="Kafka records (default: as many as REST served in --seconds).")
@click.option("--rate", type=int, default=100, show_default=True, help="py-spy samples per second per thread.")
@click.option("--native/--no-native", default=True, show_default=True,
              help="Native frames (tokenizers, ONNX Runtime, uvloop); without, py-spy costs less but the "
                   "tokenizer shows as the line of ours that calls it.")
@click.option("--kafka", "bootstrap", default=None, help="Broker to use (default: the local one, started if needed).")
@click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level.")
@clean_errors
def main(task: str, seconds: float, out: Path | None, concurrency: int, records: int | None, rate: int, native: bool,
         bootstrap: str | None, verbose: bool) -> None:
    """Profile ``slm serve <task>`` with py-spy under REST load and under a Kafka stream."""
    from bench.harness import _started
    from bench.kafka_stream import stream_through_kafka
    from bench.rest_load import rest_load, single_bodies
    from devtools.service_process import ServiceProcess
    from pipelines.labelled_rows import load_rows
    from shared.settings import REPO_ROOT, default_model_dir

    configure_logging(verbose)
    if os.geteuid() != 0:
        click.echo("not root: py-spy may be refused ptrace on the service", err=True)
    if bootstrap is None:
        from devtools import local_kafka

        cfg = local_kafka.BrokerConfig.from_env()
        local_kafka.up(cfg)
        bootstrap = local_kafka.bootstrap(cfg)
    out = out or REPO_ROOT / ".cache" / "perf" / time.strftime("%Y%m%dT%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    rows, _, _ = load_rows(task, None)
    bodies = single_bodies(rows)
    prefix = f"prof{uuid.uuid4().hex[:6]}."
    env = {"SLM_KAFKA_BOOTSTRAP": bootstrap, "SLM_KAFKA_TOPIC_PREFIX": prefix, "SLM_KAFKA_GROUP_ID": f"{prefix}slm-{task}",
           "OTEL_SDK_DISABLED": "true", "SLM_CACHE_SIZE": "0"}
    service = _started(ServiceProcess(task, default_model_dir(task), out / "serve.log", env=env))
    url = f"{service.url}/predict"
    runs: dict[str, dict] = {}
    try:
        asyncio.run(rest_load(url, bodies, 1, concurrency, 2))  # warm-up
        runs["rest"] = record(service.pid, out / "rest.collapsed.txt",
                              lambda: asyncio.run(rest_load(url, bodies, 1, concurrency, seconds))["requests"],
                              rate, native)
        click.echo(f"rest: {runs['rest']['items']} items in {runs['rest']['seconds']} s")
        count = records or max(200, int(runs["rest"]["items"]))
        stream = (rows * (count // len(rows) + 1))[:count]
        stream_through_kafka(bootstrap, task, prefix, rows[:100], None, 120)  # warm-up: the consumer's first fetch
        runs["kafka"] = record(service.pid, out / "kafka.collapsed.txt",
                               lambda: stream_through_kafka(bootstrap, task, prefix, stream, None, 600)["answered"],
                               rate, native)
        click.echo(f"kafka: {runs['kafka']['items']} items in {runs['kafka']['seconds']} s")
    finally:
        service.stop(90)
    titles = {"rest": f"{task}: REST single items at c={concurrency}",
              "kafka": f"{task}: Kafka stream, {len(stream)} records produced at once"}
    lines = [f"# Where the CPU goes: `slm serve {task}`", "",
             f"py-spy at {rate} samples/s per thread{', native frames' if native else ''}; response cache off. "
             "Each sample counts for its innermost frame that belongs to a category (bench/profile_stacks.py); "
             "CPU totals from the OS, per thread.", ""]
    for name, recorded in runs.items():
        lines += _write_scenario(out, name, titles[name], recorded, rate)
    (out / "table.md").write_text("\n".join(lines))
    (out / "profile.json").write_text(json.dumps({"task": task, "rate": rate, "native": native,
                                                  "concurrency": concurrency, "runs": runs}, indent=2))
    click.echo((out / "table.md").read_text())
    click.echo(f"profile: {out}")


if __name__ == "__main__":
    main()
