"""Server processes on 127.0.0.1: start ``slm serve <task>``, wait for ``/readyz``, stop it for good.

The one helper behind ``slm up`` (:mod:`devtools.stack`), the benchmarks (``bench``) and the tests:
each server runs in a session of its own with its output in a log file. Stopping is what
Kubernetes does: SIGTERM to the server only, which stops its workers (BentoML's run in sessions
of their own); what outlives it is reported (:attr:`ServerProcess.outlived`) and killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from devtools.host_tools import free_port
from shared.errors import SlmError
from shared.settings import REPO_ROOT, ServingSettings

__all__ = ["ServerProcess", "ServiceExited", "ServiceNotReady", "ServiceProcess", "Stopped",
           "stop_recorded", "wait_ready"]

POLL_S = 0.2


class ServiceExited(SlmError):
    """A server process ended before it was ready."""


class ServiceNotReady(SlmError):
    """A server process did not become ready in time."""



@dataclass
class Stopped:
    """How a server stopped: its exit status (None for a process that is not ours) and the pids of
    the processes under it that outlived it and were killed."""

    returncode: int | None = None
    outlived: list[int] = field(default_factory=list)


def _stop_tree(server, timeout: float, workers_timeout: float) -> Stopped:
    """SIGTERM ``server`` (a ``psutil.Process``), wait ``timeout``, then SIGKILL; kill what outlives it."""
    import psutil

    try:
        workers = server.children(recursive=True)
        server.send_signal(signal.SIGTERM)
    except psutil.NoSuchProcess:
        return Stopped()
    try:
        code = server.wait(timeout)
    except psutil.TimeoutExpired:
        server.kill()
        code = server.wait(30)
    _, alive = psutil.wait_procs(workers, timeout=workers_timeout)
    for worker in alive:  # workers run in sessions of their own; never leave one behind
        try:
            worker.kill()
        except psutil.NoSuchProcess:
            pass
    return Stopped(code, [worker.pid for worker in alive])


def stop_recorded(pid: int, timeout: float = 60.0) -> Stopped:
    """Stop the ``serve`` server with the recorded ``pid`` (started by another process); a pid now
    used by another program is left alone."""
    import psutil

    try:
        server = psutil.Process(pid)
        if "serve" not in server.cmdline():
            return Stopped()
    except psutil.NoSuchProcess:
        return Stopped()
    return _stop_tree(server, timeout, workers_timeout=30)


class ServerProcess:
    """An HTTP server on 127.0.0.1 in a session of its own, its output appended to ``log_path``.

    Args:
        command (`Sequence[str]`): what to run.
        log_path (`Path`): the server's stdout and stderr.
        port (`int`): where it listens.
        env (`Mapping[str, str] | None`): added to ``base_env``.
        base_env (`Mapping[str, str] | None`, defaults to this process's environment): the environment the
            server starts from.
        ready (`Callable[[str], bool] | None`, defaults to ``GET /readyz`` answering 200): whether the
            server at the given base URL is ready; an ``httpx.HTTPError`` counts as not yet.
        name (`str`, defaults to the command): how errors name it.
    """

    def __init__(self, command: Sequence[str], log_path: Path, *, port: int, env: Mapping[str, str] | None = None,
                 base_env: Mapping[str, str] | None = None, ready: Callable[[str], bool] | None = None,
                 name: str | None = None) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.name = name or " ".join(command[:4])
        self._ready = ready or (lambda url: httpx.get(f"{url}/readyz", timeout=2).status_code == 200)
        self.ready_at: float | None = None
        self.outlived: list[int] = []
        self.started_at = time.monotonic()
        with open(log_path, "ab") as log:
            environment = {**(os.environ if base_env is None else base_env), **(env or {})}
            self.proc = subprocess.Popen(list(command), cwd=REPO_ROOT, env=environment, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def cold_start_s(self) -> float | None:
        """Seconds from the start to the first ready answer, once :meth:`wait_ready` saw it."""
        return None if self.ready_at is None else round(self.ready_at - self.started_at, 1)

    def ready(self) -> bool:
        """Whether the server answers as ready now.

        Raises:
            ServiceExited: the process has ended.
        """
        if self.proc.poll() is not None:
            raise ServiceExited(f"{self.name} exited with {self.proc.returncode}; see {self.log_path}")
        try:
            ready = bool(self._ready(self.url))
        except httpx.HTTPError:
            return False
        if ready and self.ready_at is None:
            self.ready_at = time.monotonic()
        return ready

    def wait_ready(self, timeout: float = 120) -> ServerProcess:
        """Wait until the server is ready (:func:`wait_ready`); returns ``self``."""
        wait_ready([self], timeout)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 60.0, workers_timeout: float = 10.0) -> int | None:
        """SIGTERM the server, wait ``timeout``, SIGKILL it if need be; returns its exit status.

        The processes under it that outlive it (by ``workers_timeout``) are killed and their pids
        kept in :attr:`outlived`.
        """
        import psutil

        if self.proc.poll() is not None:
            return self.proc.returncode
        try:
            stopped = _stop_tree(psutil.Process(self.pid), timeout, workers_timeout)
        except psutil.NoSuchProcess:
            stopped = Stopped()
        self.outlived = stopped.outlived
        if stopped.returncode is not None:
            self.proc.returncode = stopped.returncode  # reaped by psutil: tell Popen
        return self.proc.wait(30)

    def kill(self) -> None:
        """SIGKILL the server and every process under it: no shutdown hooks, no final commit."""
        import psutil

        try:
            server = psutil.Process(self.pid)
            tree = [*server.children(recursive=True), server]
        except psutil.NoSuchProcess:
            tree = []
        for process in tree:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        self.proc.wait(30)


class ServiceProcess(ServerProcess):
    """``slm serve <task>`` on 127.0.0.1, ready when ``/readyz`` answers 200.

    Args:
        task (`str`): the task to serve.
        model_dir (`Path`): its model folder.
        log_path (`Path`): the server's output.
        port (`int | None`): REST port; None takes a free one.
        bootstrap (`str | None`): Kafka bootstrap servers (``--kafka``); None leaves it to the environment.
        env (`Mapping[str, str] | None`): added to the server's environment (``SLM_*``, ``OTEL_*``).
        settings (`ServingSettings | None`): the server's settings; its environment is rendered from
            them (:meth:`shared.settings.ServingSettings.environment`). None: this process's environment.
    """

    def __init__(self, task: str, model_dir: Path, log_path: Path, *, port: int | None = None,
                 bootstrap: str | None = None, env: Mapping[str, str] | None = None,
                 settings: ServingSettings | None = None) -> None:
        self.task = task
        port = port or free_port()
        slm = Path(sys.executable).with_name("slm")
        command = [str(slm), "serve", task, "--host", "127.0.0.1", "--port", str(port), "--model", str(model_dir)]
        if bootstrap:
            command += ["--kafka", bootstrap]
        super().__init__(command, log_path, port=port, env=env, name=f"{task} service",
                         base_env=settings.environment() if settings else None)


def wait_ready(servers: Sequence[ServerProcess], timeout: float, progress: str | None = None) -> None:
    """Wait until every server is ready; ``progress`` names a progress bar (none without it).

    Raises:
        ServiceExited: one of them ended first.
        ServiceNotReady: some were not ready within ``timeout`` (they keep running).
    """
    from tqdm.auto import tqdm

    deadline = time.monotonic() + timeout
    pending = list(servers)
    with tqdm(desc=progress, total=len(pending), leave=False, disable=progress is None) as bar:
        while pending and time.monotonic() < deadline:
            for server in list(pending):
                if server.ready():
                    pending.remove(server)
                    bar.update()
            if pending:
                time.sleep(POLL_S)
    if pending:
        names = ", ".join(server.name for server in pending)
        logs = ", ".join(str(server.log_path) for server in pending)
        raise ServiceNotReady(f"not ready within {timeout:.0f}s: {names}; see {logs}")
