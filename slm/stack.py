"""``slm up`` / ``slm down``: the local broker and the four task services, on 127.0.0.1.

Each service runs ``slm serve <task>`` in a session of its own, with its REST port and
the broker; the pids go to a state file so ``slm down`` (another process) can stop them.
They serve the release models in `models/<task>`, each checked against its manifest first;
nothing is trained here.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from tqdm.auto import tqdm

from shared.errors import SlmError

__all__ = ["PORTS", "RunningService", "release_model", "start_service", "stop_service", "up", "down"]

logger = logging.getLogger(__name__)

# One REST port per task, in the order the tasks are listed everywhere.
PORTS = {"transactions": 3001, "entities": 3002, "helpdesk": 3003, "sentiment": 3004}
READY_TIMEOUT_S = 180


@dataclass
class RunningService:
    task: str
    port: int
    pid: int
    log: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _slm() -> str:
    return str(Path(sys.executable).with_name("slm"))


def release_model(task: str) -> Path:
    """The task's model folder (``models/<task>``, the release model), checked against its manifest.

    Nothing is trained here: a missing or changed folder stops the start with one line.
    """
    from shared.errors import ModelError
    from shared.runtime import open_model_folder
    from shared.settings import default_model_dir

    model_dir = default_model_dir(task)
    if not model_dir.is_dir():
        raise ModelError(f"no model folder at {model_dir}: `git checkout -- models/{task}` restores the release "
                         f"model, `slm train {task}` trains one")
    open_model_folder(model_dir)
    return model_dir


def start_service(task: str, model_dir: Path, port: int, bootstrap: str, log_path: Path,
                  env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``slm serve`` for ``task`` in a session of its own; :func:`wait_ready` waits for it."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([_slm(), "serve", task, "--port", str(port), "--model", str(model_dir),
                                 "--kafka", bootstrap], stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env={**os.environ, **(env or {})})
    return proc


def wait_ready(services: list[tuple[str, int, subprocess.Popen]], log_dir: Path) -> None:
    """Wait until every service answers ``/readyz``; raise naming the one that did not."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    pending = list(services)
    with tqdm(desc="starting services", total=len(services), leave=False) as bar:
        while pending and time.monotonic() < deadline:
            for item in list(pending):
                task, port, proc = item
                if proc.poll() is not None:
                    raise SlmError(f"{task} service exited with {proc.returncode}; see {log_dir / f'{task}-service.log'}")
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                        pending.remove(item)
                        bar.update()
                except httpx.HTTPError:
                    pass
            if pending:
                time.sleep(0.5)
    if pending:
        names = ", ".join(task for task, _, _ in pending)
        raise SlmError(f"not ready within {READY_TIMEOUT_S}s: {names}; see the logs in {log_dir}")


def stop_service(pid: int) -> None:
    """SIGTERM the BentoML server (its workers finish, commit and exit); kill what outlives it."""
    import psutil

    try:
        server = psutil.Process(pid)
        if "serve" not in server.cmdline():  # a recorded pid reused by another program
            return
        workers = server.children(recursive=True)
        server.send_signal(signal.SIGTERM)
    except psutil.NoSuchProcess:
        return
    gone, alive = psutil.wait_procs([server], timeout=60)
    for proc in alive:
        proc.kill()
    _, alive = psutil.wait_procs(workers, timeout=30)
    for worker in alive:  # workers run in sessions of their own; never leave one behind
        worker.kill()


def _state_file(data_dir: Path) -> Path:
    # Beside the broker's data: one record of services per broker.
    return data_dir / "services.json"


def up(tasks: list[str], *, port_base: int | None = None) -> tuple[str, list[RunningService]]:
    """Broker up, then every task's service; returns the bootstrap address and the services.

    Ports are :data:`PORTS`, or ``port_base + 1`` ... ``port_base + 4`` in the same order.
    On any failure everything started here is stopped again.
    """
    from slm import local_kafka

    ports = dict(PORTS) if port_base is None else {task: port_base + i for i, task in enumerate(PORTS, start=1)}
    cfg = local_kafka.BrokerConfig.from_env()
    models = {task: release_model(task) for task in tasks}
    local_kafka.up(cfg)
    bootstrap = local_kafka.bootstrap(cfg)
    # Four services share this machine's CPUs: one ONNX thread each unless told otherwise.
    env = {} if "SLM_ONNX_THREADS" in os.environ else {"SLM_ONNX_THREADS": "1"}
    started: list[tuple[str, int, subprocess.Popen]] = []
    try:
        for task in tasks:
            log = cfg.data_dir / f"{task}-service.log"
            started.append((task, ports[task], start_service(task, models[task], ports[task], bootstrap, log, env)))
        wait_ready(started, cfg.data_dir)
    except BaseException:
        for _, _, proc in started:
            stop_service(proc.pid)
        raise
    running = [RunningService(task, port, proc.pid, str(cfg.data_dir / f"{task}-service.log"))
               for task, port, proc in started]
    previous = _read_state(cfg.data_dir)
    _state_file(cfg.data_dir).write_text(json.dumps([vars(s) for s in previous + running], indent=2) + "\n")
    return bootstrap, running


def _read_state(data_dir: Path) -> list[RunningService]:
    path = _state_file(data_dir)
    if not path.is_file():
        return []
    return [RunningService(**item) for item in json.loads(path.read_text())]


def down(services: list[RunningService] | None = None, *, broker: bool = True) -> list[str]:
    """Stop ``services`` (default: every one ``up`` recorded), then the broker; returns the tasks stopped."""
    from slm import local_kafka

    cfg = local_kafka.BrokerConfig.from_env()
    recorded = _read_state(cfg.data_dir)
    targets = recorded if services is None else services
    for service in targets:
        stop_service(service.pid)
    remaining = [s for s in recorded if s.pid not in {t.pid for t in targets}]
    if remaining:
        _state_file(cfg.data_dir).write_text(json.dumps([vars(s) for s in remaining], indent=2) + "\n")
    else:
        _state_file(cfg.data_dir).unlink(missing_ok=True)
    if broker:
        local_kafka.down(cfg)
    return [s.task for s in targets]
