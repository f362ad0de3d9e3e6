"""Service processes for tests (:mod:`devtools.service_process`, with telemetry off), and waiting without fixed sleeps."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from devtools import service_process
from devtools.host_tools import free_port
from devtools.service_process import ServiceExited
from shared.settings import REPO_ROOT

REAPER = Path(__file__).with_name("reaper.py")

__all__ = ["REPO_ROOT", "ServiceProcess", "ended", "free_port", "run_to_exit", "wait_for"]


def wait_for(condition, timeout: float, interval: float = 0.2, what: str = "condition") -> None:
    """Poll ``condition()`` until it is truthy; fail the test with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


class ServiceProcess(service_process.ServiceProcess):
    """``slm serve <task>`` in a child process with its own log file and telemetry off."""

    def __init__(self, task: str, model_dir: Path, log_path: Path, env: dict[str, str] | None = None,
                 port: int | None = None) -> None:
        super().__init__(task, model_dir, log_path, port=port, env={"OTEL_SDK_DISABLED": "true", **(env or {})})

    def ready(self) -> bool:
        try:
            return super().ready()
        except ServiceExited as exc:
            raise ServiceExited(f"{exc}; log:\n{self.log()[-3000:]}") from None

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM the server process, as Kubernetes does to PID 1, and wait; returns the exit code.

        BentoML's workers run in sessions of their own; the server stops them on SIGTERM.
        The test fails if any of them outlives the server.
        """
        code = self.stop(timeout)
        assert not self.outlived, f"worker processes outlived the server: {self.outlived}"
        return code


def ended(pid: int) -> bool:
    """Whether process ``pid`` has ended (a zombie that a parent elsewhere has yet to reap counts)."""
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def run_to_exit(command: Sequence[str], timeout: float, **popen) -> subprocess.CompletedProcess:
    """``subprocess.run(command, capture_output=True, text=True, timeout=timeout)`` for a command that
    may start workers in sessions of their own (``slm serve``): run under :mod:`tests.support.reaper`,
    every process it started ends with it, also when it runs past ``timeout``, so none outlives the
    test or holds its output open.

    Raises:
        subprocess.TimeoutExpired: it ran past ``timeout`` (it and its workers are killed first).
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, str(REAPER), *command], stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL, **popen)
        try:
            proc.wait(timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
            proc.terminate()  # the reaper kills the command, then whatever it left
            proc.wait(60)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if timed_out:
        raise subprocess.TimeoutExpired(proc.args, timeout, stdout, stderr)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
