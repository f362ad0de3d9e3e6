"""Service processes for tests (:mod:`devtools.service_process`, with telemetry off), and waiting without fixed sleeps."""

from __future__ import annotations

import time
from pathlib import Path

from devtools import service_process
from devtools.host_tools import free_port
from devtools.service_process import ServiceExited
from shared.settings import REPO_ROOT

__all__ = ["REPO_ROOT", "ServiceProcess", "free_port", "wait_for"]


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
