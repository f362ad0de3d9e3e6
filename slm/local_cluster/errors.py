"""The one error of the local cluster."""

from __future__ import annotations

from shared.errors import SlmError

__all__ = ["ClusterError"]


class ClusterError(SlmError):
    """The local cluster cannot be built, started or stopped (the CLI prints it as one line)."""
