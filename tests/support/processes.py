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
import psutil

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
        """SIGTERM the server process, as Kubernetes does to PID 1, and wait; returns the exit code.

        BentoML's workers run in sessions of their own; the server stops them on SIGTERM.
        The test fails if any of them outlives the server.
        """
        workers = self._descendants()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout)
        self._log.close()
        _, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive, f"worker processes outlived the server: {[p.pid for p in alive]}"
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the server and every worker: no shutdown hooks, no final commit."""
        for process in [*self._descendants(), psutil.Process(self.proc.pid)]:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        self.proc.wait(30)
        self._log.close()

    def _descendants(self) -> list:
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
