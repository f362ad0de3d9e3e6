"""What the broker's set-up steps share: finding a program, running it with its output kept, a file lock."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from slm.local_kafka.errors import BrokerError
from slm.locks import file_lock

__all__ = ["file_lock", "require", "run_tool", "tail"]

LOG_TAIL_LINES = 30




def require(tool: str, hint: str) -> str:
    """Return the full path of *tool* on ``PATH`` or raise :class:`BrokerError`."""
    found = shutil.which(tool)
    if found is None:
        raise BrokerError(f"`{tool}` not found on PATH; {hint}")
    return found


def run_tool(cmd: list[str], timeout: float, what: str) -> subprocess.CompletedProcess:
    """Run a set-up tool with its output captured; a time-out becomes a :class:`BrokerError`."""
    try:
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BrokerError(f"{what} timed out after {timeout:.0f}s: {' '.join(cmd)}") from exc


def tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    """Return the last *lines* lines of *text*."""
    return "\n".join(text.splitlines()[-lines:])
