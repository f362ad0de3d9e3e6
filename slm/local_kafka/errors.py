"""The one error of the local broker."""

from __future__ import annotations

from shared.errors import SlmError

__all__ = ["BrokerError"]


class BrokerError(SlmError):
    """The local broker cannot be installed, started or stopped (the CLI prints it as one line)."""
