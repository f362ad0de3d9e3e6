"""Starting service processes for tests and waiting on them without fixed sleeps."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

__all__ = ["ServiceProcess", "free_port", "wait_for"]

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, timeout: float, interval: float = 0.2, what: str = "condition") -> None:
    """Poll ``condition()`` until it is truthy; fail the test with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


class ServiceProcess:
    """``slm serve <task>`` in a child process with its own log file."""

    def __init__(self, task: str, model_dir: Path, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        child_env = {**os.environ, "OTEL_SDK_DISABLED": "true", **(env or {})}
        self._log = open(log_path, "wb")
        slm = Path(sys.executable).with_name("slm")
        self.proc = subprocess.Popen(
            [str(slm), "serve", task, "--port", str(self.port), "--model", str(model_dir)],
            cwd=REPO_ROOT, env=child_env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"service exited with {self.proc.returncode}; log:\n{self.log()[-3000:]}")
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout: float = 120) -> "ServiceProcess":
        wait_for(self.ready, timeout, what=f"{self.url}/readyz")
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM the whole process group and wait; returns the exit code."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout)
        self._log.close()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown hooks, no final commit."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        self._log.close()
