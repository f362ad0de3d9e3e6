"""What every developer tool needs from the host: a program found on ``PATH``, the tail of a log,
a free port on loopback."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

from shared.errors import SlmError

__all__ = ["free_port", "log_tail", "require", "tail"]

# Enough for the last lines of any log we read, without reading a broker's whole log.
_TAIL_BYTES = 256 * 1024


def require(tool: str, error: type[SlmError], hint: str) -> str:
    """The full path of *tool* on ``PATH``, or *error* saying that it is missing and *hint* (how to get it)."""
    found = shutil.which(tool)
    if found is None:
        raise error(f"`{tool}` not found on PATH; {hint}")
    return found


def tail(text: str, lines: int) -> str:
    """The last *lines* lines of *text*."""
    return "\n".join(text.splitlines()[-lines:])


def log_tail(path: Path, lines: int) -> str:
    """The last *lines* lines of the log at *path*, for an error message (a placeholder when it is missing)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - _TAIL_BYTES))
            text = fh.read().decode(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return tail(text.strip(), lines)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
