"""Running the image tools (debootstrap, tar, podman, ctr): found on PATH, output kept in a log.

Their output is long (a build prints every pip line), so it goes to a log file; a failure is
one line naming the step, its last line of output and the log.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from devtools import host_tools
from devtools.errors import ImageError
from devtools.locks import file_lock

__all__ = ["file_lock", "last_line", "require", "require_root", "run_logged"]

INSTALL_HINT = "`make images` installs podman, debootstrap and containerd (ctr) with apt-get"


def require(tool: str) -> str:
    """The full path of *tool* on ``PATH``, or an :class:`ImageError` that says how to get it."""
    return host_tools.require(tool, ImageError, INSTALL_HINT)


def require_root(what: str) -> None:
    """debootstrap needs root, and rootful podman keeps its storage where we tell it (.cache)."""
    if os.geteuid() != 0:
        raise ImageError(f"{what} needs root (debootstrap, and podman with its storage under .cache/containers)")


def last_line(text: str) -> str:
    """The last non-blank line of *text*, the one that usually says what went wrong."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def run_logged(cmd: Sequence[str], *, what: str, log: Path, timeout: float,
               env: Mapping[str, str] | None = None) -> str:
    """Run *cmd* with its output appended to *log*; return that output.

    Raises:
        ImageError: the command failed or ran past *timeout* seconds (one line with the log's path).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(cmd)}\n".encode())
        out.flush()
        start = out.tell()
        try:
            proc = subprocess.run(list(cmd), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                  env=None if env is None else dict(env), timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise ImageError(f"{what} did not finish within {timeout:.0f}s (log: {log})") from None
    with open(log, "rb") as written:
        written.seek(start)
        output = written.read().decode(errors="replace")
    if proc.returncode != 0:
        raise ImageError(f"{what} failed (exit {proc.returncode}): {last_line(output)} (log: {log})")
    return output
