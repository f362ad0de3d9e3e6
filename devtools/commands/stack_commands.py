"""``slm up``, ``slm down`` and ``slm demo``: the local broker and the four services, with or without
each task's test set streamed through Kafka."""

from __future__ import annotations

import click

from devtools.commands import tasks_option
from shared.console import clean_errors, validated
from shared.task_kinds import TASKS

__all__ = ["demo", "down", "up"]


@click.command()
@tasks_option
@click.option("--limit", type=int, default=None, help="Stream only the first N test rows of each task.")
@click.option("--keep-running", is_flag=True, help="Leave the broker and the services running afterwards.")
@clean_errors
def demo(tasks: tuple[str, ...], limit: int | None, keep_running: bool) -> None:
    """Broker and services up, stream each task's test set through Kafka, live view, summaries."""
    from devtools.demo import MALFORMED, run_demo

    broker, serving = _stack_settings()
    summaries, services = run_demo(list(tasks or TASKS), broker, serving, limit=limit, keep_running=keep_running)
    for summary in summaries:
        click.echo("\n".join(["", f"== {summary.task} ==", *summary.lines()]))
    if keep_running:
        _echo_running(services)
        click.echo("stop them with: slm down")
    if any(s.results < s.sent or s.dlq < len(MALFORMED) for s in summaries):
        raise SystemExit(1)


def _stack_settings():
    """The local broker's settings and the services' (``slm up``, ``slm demo``), each validated once."""
    from devtools.local_kafka import BrokerConfig
    from shared.settings import ServingSettings

    return BrokerConfig.from_env(), validated(ServingSettings.from_env)


def _echo_running(services) -> None:
    for service in services:
        click.echo(f"{service.task:<13} REST {service.url}/predict  (docs {service.url}/docs, log {service.log})")
    click.echo("Kafka         127.0.0.1:9092, topics <task>.requests / .results / .review / .dlq")


@click.command()
@tasks_option
@click.option("--port-base", type=int, default=None,
              help="REST ports base+1..base+4 in task order (default 3001-3004).")
@clean_errors
def up(tasks: tuple[str, ...], port_base: int | None) -> None:
    """Start the local broker and the task services (the release models in models/); no traffic."""
    from devtools import stack

    _, services = stack.up(list(tasks or TASKS), *_stack_settings(), port_base=port_base)
    _echo_running(services)
    click.echo("stop them with: slm down")


@click.command()
@clean_errors
def down() -> None:
    """Stop the services `slm up` started, then the local broker."""
    from devtools import stack
    from devtools.local_kafka import BrokerConfig

    stopped = stack.down(BrokerConfig.from_env())
    click.echo(f"stopped: {', '.join(stopped) or 'no services'}; broker down")
