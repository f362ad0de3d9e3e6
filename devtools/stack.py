"""``slm up`` / ``slm down``: the local broker and the four task services, on 127.0.0.1.

Each service runs ``slm serve <task>`` in a session of its own, with its REST port and
the broker; the pids go to a state file so ``slm down`` (another process) can stop them.
They serve the release models in `models/<task>`, each checked against its manifest first;
nothing is trained here.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from devtools.local_kafka import BrokerConfig
from devtools.service_process import ServiceProcess, stop_recorded, wait_ready
from shared.settings import ServingSettings

__all__ = ["PORTS", "RunningService", "down", "release_model", "up"]

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


def _state_file(data_dir: Path) -> Path:
    # Beside the broker's data: one record of services per broker.
    return data_dir / "services.json"


def up(tasks: list[str], cfg: BrokerConfig, serving: ServingSettings, *,
       port_base: int | None = None) -> tuple[str, list[RunningService]]:
    """Broker ``cfg`` up, then every task's service with the ``serving`` settings; returns the bootstrap
    address and the services.

    Ports are :data:`PORTS`, or ``port_base + 1`` ... ``port_base + 4`` in the same order.
    On any failure everything started here is stopped again.
    """
    from devtools import local_kafka

    ports = dict(PORTS) if port_base is None else {task: port_base + i for i, task in enumerate(PORTS, start=1)}
    models = {task: release_model(task) for task in tasks}
    local_kafka.up(cfg)
    bootstrap = local_kafka.bootstrap(cfg)
    # Four services share this machine's CPUs: one ONNX thread each unless told otherwise.
    if "onnx_threads" not in serving.service.model_fields_set:
        serving = serving.replace(service={"onnx_threads": 1})
    started: list[ServiceProcess] = []
    try:
        for task in tasks:
            started.append(ServiceProcess(task, models[task], cfg.data_dir / f"{task}-service.log", port=ports[task],
                                          bootstrap=bootstrap, settings=serving))
        wait_ready(started, READY_TIMEOUT_S, progress="starting services")
    except BaseException:
        for service in started:
            service.stop()
        raise
    running = [RunningService(s.task, s.port, s.pid, str(s.log_path)) for s in started]
    previous = _read_state(cfg.data_dir)
    _state_file(cfg.data_dir).write_text(json.dumps([vars(s) for s in previous + running], indent=2) + "\n")
    return bootstrap, running


def _read_state(data_dir: Path) -> list[RunningService]:
    path = _state_file(data_dir)
    if not path.is_file():
        return []
    return [RunningService(**item) for item in json.loads(path.read_text())]


def down(cfg: BrokerConfig, services: list[RunningService] | None = None, *, broker: bool = True) -> list[str]:
    """Stop ``services`` (default: every one ``up`` recorded beside broker ``cfg``), then the broker; returns
    the tasks stopped."""
    from devtools import local_kafka

    recorded = _read_state(cfg.data_dir)
    targets = recorded if services is None else services
    for service in targets:
        stop_recorded(service.pid)
    remaining = [s for s in recorded if s.pid not in {t.pid for t in targets}]
    if remaining:
        _state_file(cfg.data_dir).write_text(json.dumps([vars(s) for s in remaining], indent=2) + "\n")
    else:
        _state_file(cfg.data_dir).unlink(missing_ok=True)
    if broker:
        local_kafka.down(cfg)
    return [s.task for s in targets]
