"""The developer commands that plug into ``slm`` (entry point group ``slm.commands``), one module per group."""

from __future__ import annotations

import click

from shared.task_kinds import TASKS

__all__ = ["tasks_option"]

tasks_option = click.option("--task", "tasks", type=click.Choice(TASKS), multiple=True,
                            help="Only this task (repeat for several; default all four).")
