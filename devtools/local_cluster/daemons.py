"""The node's long-running processes: start one in a session of its own with its log file and
pid file, find it again from another process, and stop it by that pid.

A pid file alone is not trusted: the process must still run the binary it names, so a reused pid
is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import psutil

from devtools.errors import ClusterError
from devtools.host_tools import log_tail

__all__ = ["Daemon", "wait_for"]

_STOP_TIMEOUT_S: Final = 20.0
# Popen handles of the daemons this process started: their liveness is poll(), which also reaps
# them, and never the command line, which is empty for a moment while the program is exec'ed.
_STARTED: dict[int, subprocess.Popen] = {}
_LOG_TAIL_LINES: Final = 5


def _log_summary(path: Path) -> str:
    """The last lines of a log on one line, for an error message."""
    return " | ".join(line.strip() for line in log_tail(path, _LOG_TAIL_LINES).splitlines())


@dataclass(frozen=True)
class Daemon:
    """One of the node's processes: its name (pid and log file stem), program, arguments and the
    variables it gets beside this process's environment."""

    name: str
    argv: Sequence[str]
    run_dir: Path
    log_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def process(self) -> psutil.Process | None:
        """The running process of this daemon, or None."""
        try:
            pid = int(self.pid_file.read_text().strip())
            if pid in _STARTED:
                return psutil.Process(pid) if _STARTED[pid].poll() is None else None
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            cmdline = proc.cmdline()
        except (OSError, ValueError, psutil.Error):
            return None
        return proc if cmdline and cmdline[0] == str(self.argv[0]) else None

    def start(self) -> int:
        """Start the daemon unless it runs; return its pid."""
        running = self.process()
        if running is not None:
            return running.pid
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            try:
                proc = subprocess.Popen([str(arg) for arg in self.argv], stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True,
                                        env={**os.environ, **self.env})
            except OSError as exc:
                raise ClusterError(f"cannot start {self.name} ({self.argv[0]}): {exc}") from None
        _STARTED[proc.pid] = proc
        self.pid_file.write_text(f"{proc.pid}\n")
        return proc.pid

    def alive_or_raise(self) -> None:
        """Raise with the log's last lines when the daemon has exited."""
        if self.process() is None:
            raise ClusterError(f"{self.name} exited: {_log_summary(self.log_file)} (log: {self.log_file})")

    def stop(self, timeout: float = _STOP_TIMEOUT_S) -> bool:
        """SIGTERM, then SIGKILL after ``timeout``; return whether a process was stopped."""
        proc = self.process()
        if proc is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        with contextlib.suppress(psutil.NoSuchProcess):
            children = proc.children(recursive=True)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except psutil.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
            if proc.pid in _STARTED:
                _STARTED.pop(proc.pid).wait()
            _, alive = psutil.wait_procs(children, timeout=2)
            for child in alive:
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()
        self.pid_file.unlink(missing_ok=True)
        return True


def wait_for(check, *, what: str, timeout: float, daemon: Daemon | None = None, poll: float = 0.5):
    """Call ``check`` until it returns a truthy value; fail with ``what`` (and the daemon's log)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if daemon is not None:
            daemon.alive_or_raise()
        if time.monotonic() > deadline:
            where = f" ({daemon.name} log: {_log_summary(daemon.log_file)})" if daemon else ""
            raise ClusterError(f"{what} not within {timeout:.0f} s{where}")
        time.sleep(poll)
