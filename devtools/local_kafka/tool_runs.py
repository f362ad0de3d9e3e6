"""Running the broker's set-up tools (mvn, kafka-storage) with their output kept."""

from __future__ import annotations

import subprocess

from devtools.errors import BrokerError

__all__ = ["LOG_TAIL_LINES", "run_tool"]

LOG_TAIL_LINES = 30


def run_tool(cmd: list[str], timeout: float, what: str) -> subprocess.CompletedProcess:
    """Run a set-up tool with its output captured; a time-out becomes a :class:`BrokerError`."""
    try:
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BrokerError(f"{what} timed out after {timeout:.0f}s: {' '.join(cmd)}") from exc
