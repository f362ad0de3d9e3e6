"""``slm``: the one command line for slm-services (benchmarks have their own: ``python -m bench``).

This module only assembles: the product's command groups come from :mod:`slm.commands`, and
plug-in groups (the developer tools: ``slm kafka``, ``slm cluster``, ``slm images``, ``slm up``,
``slm down``, ``slm demo``) from the ``slm.commands`` entry point group, so a serving image that
leaves :mod:`devtools` out simply has no such commands. Errors raised on purpose
(:class:`shared.errors.SlmError`) print one clear line and exit 2, never a stack trace
(:mod:`shared.console`).
"""

from __future__ import annotations

import click

from shared.console import configure_logging
from slm.commands.compare_commands import compare_command
from slm.commands.drift_commands import drift
from slm.commands.feedback_commands import feedback
from slm.commands.model_commands import models
from slm.commands.review_commands import review
from slm.commands.serve_command import serve
from slm.commands.train_commands import evaluate, train
from slm.plugins import plugins

__all__ = ["main"]

COMMANDS_GROUP = "slm.commands"
SETTINGS_GROUP = "slm.settings"


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level.")
def main(verbose: bool) -> None:
    """slm-services: fine-tuned small language models as task microservices."""
    from shared.settings import warn_unknown_settings

    configure_logging(verbose)
    # A misspelt SLM_* name would otherwise be ignored without a word; plug-ins add the names they read.
    warn_unknown_settings(extra=plugins(SETTINGS_GROUP))


for _command in (serve, train, evaluate, models, drift, feedback, compare_command, review, *plugins(COMMANDS_GROUP)):
    main.add_command(_command)


if __name__ == "__main__":
    main()
