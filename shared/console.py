"""What every command line of the project does alike: its logging, and errors as one line.

An error raised on purpose (:class:`shared.errors.SlmError`: a taken port, a bad file, a
refused model folder, an invalid option) prints ``error: <message>`` and exits 2. Anything
else is a bug and keeps its stack trace.
"""

from __future__ import annotations

import logging
import sys
from functools import wraps

import click

from shared.errors import ConfigError, SlmError

__all__ = ["clean_errors", "configure_logging", "validated"]

OUR_LOGGERS = ("slm", "shared", "pipelines", "services", "bench")


def configure_logging(verbose: bool) -> None:
    """Our own loggers speak at INFO; third-party ones (onnxruntime's quantizer logs every tensor
    at INFO on the root logger) only from WARNING, unless ``verbose``."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    for ours in OUR_LOGGERS:
        logging.getLogger(ours).setLevel(logging.DEBUG if verbose else logging.INFO)


def clean_errors(func):
    """Run a command: an :class:`SlmError` becomes one line on stderr and exit status 2."""

    @wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except SlmError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)

    return wrapper


def validated(build, /, *args, **kwargs):
    """``build(*args, **kwargs)``, where a ValueError is the arguments' validation (a dataclass's
    ``__post_init__``, a settings class reading ``SLM_*``): it becomes one :class:`ConfigError` line."""
    from pydantic import ValidationError

    try:
        return build(*args, **kwargs)
    except ValidationError as exc:
        from shared.kafka.messages import validation_summary

        raise ConfigError(f"{exc.title}: {validation_summary(exc)}") from None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
