"""``up``, ``down`` and ``status`` of the local broker: idempotent, safe across processes."""

from __future__ import annotations

import logging
import time
from typing import Any

from devtools.errors import BrokerError
from devtools.host_tools import require
from devtools.local_kafka.config import BrokerConfig, bootstrap
from devtools.local_kafka.maven import install
from devtools.local_kafka.processes import (POLL_S, broker_log_tail, create_scram_user, format_storage, launch,
                                            pid_alive, running_pid, stop)
from devtools.local_kafka.properties import log4j_properties, server_properties, write_if_changed
from devtools.local_kafka.security import ensure_security_files
from devtools.local_kafka.wire import answers, port_open
from devtools.locks import file_lock

__all__ = ["down", "status", "up"]

logger = logging.getLogger(__name__)


def _wait_ready(cfg: BrokerConfig, pid: int, deadline: float) -> None:
    """Poll until the broker answers ApiVersions, dies, or *deadline* passes."""
    while True:
        if not pid_alive(pid):
            raise BrokerError(
                f"Kafka broker (pid {pid}) exited during start-up; "
                f"last lines of {cfg.log_file}:\n{broker_log_tail(cfg)}"
            )
        if answers(cfg.host, cfg.port):  # TCP connect + ApiVersions round trip
            return
        if time.monotonic() >= deadline:
            raise TimeoutError
        time.sleep(POLL_S)


def up(cfg: BrokerConfig, timeout: float = 60) -> None:
    """Start the broker (installing jars and formatting storage as needed).

    Returns once ``127.0.0.1:<port>`` answers a Kafka ApiVersions request.
    Idempotent: if this config's broker is already running and answering, it
    returns at once; if it is still starting (e.g. launched by another
    process), it waits for it.  *timeout* bounds the wait for the broker to
    become ready (the one-off jar download is not counted).

    Raises:
        BrokerError: if java/mvn are missing, the ports are taken by something
            else, the broker exits during start-up (the message carries the
            last 30 lines of the broker log) or it is not ready in time (it is
            then stopped).
    """
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(cfg.lock_file):
        pid = running_pid(cfg)
        if pid is not None:
            try:
                _wait_ready(cfg, pid, time.monotonic() + timeout)
            except TimeoutError:
                raise BrokerError(
                    f"Kafka broker pid {pid} is running but {bootstrap(cfg)} did not answer "
                    f"within {timeout:.0f}s; try `slm kafka down`. Log tail:\n{broker_log_tail(cfg)}"
                ) from None
            logger.debug("Kafka broker already running (pid %d) at %s", pid, bootstrap(cfg))
            return
        cfg.pid_file.unlink(missing_ok=True)
        for port in cfg.ports:
            if port_open(cfg.host, port):
                raise BrokerError(
                    f"{cfg.host}:{port} is already in use by a process this tool did not start "
                    f"(no live pid in {cfg.pid_file}); stop it or choose another SLM_KAFKA_PORT"
                )

        java = require("java", BrokerError, "install a Java 17+ runtime to run the Kafka broker")
        install(cfg)
        started = time.monotonic()
        if cfg.secure:
            ensure_security_files(cfg.security_dir)
        write_if_changed(cfg.properties_file, server_properties(cfg))
        write_if_changed(cfg.log4j_file, log4j_properties(cfg))
        format_storage(cfg, java)
        pid = launch(cfg, java)
        try:
            _wait_ready(cfg, pid, time.monotonic() + timeout)
        except TimeoutError:
            last_lines = broker_log_tail(cfg)
            stop(cfg, pid, timeout=10)
            raise BrokerError(
                f"Kafka broker did not answer on {bootstrap(cfg)} within {timeout:.0f}s "
                f"(stopped it); last lines of {cfg.log_file}:\n{last_lines}"
            ) from None
        except BrokerError:
            cfg.pid_file.unlink(missing_ok=True)
            raise
        if cfg.secure:
            create_scram_user(cfg, java)
        logger.info("Kafka broker ready at %s in %.1fs", bootstrap(cfg), time.monotonic() - started)


def down(cfg: BrokerConfig, timeout: float = 30) -> None:
    """Stop the broker: SIGTERM, wait up to *timeout* seconds, then SIGKILL.

    Idempotent: does nothing (except removing a stale pid file) when the
    broker is not running.  Data in ``data_dir`` is kept.
    """
    if not cfg.data_dir.is_dir():
        return
    with file_lock(cfg.lock_file):
        pid = running_pid(cfg)
        if pid is None:
            if cfg.pid_file.exists():
                logger.debug("removing stale pid file %s", cfg.pid_file)
                cfg.pid_file.unlink(missing_ok=True)
            return
        stop(cfg, pid, timeout)


def status(cfg: BrokerConfig) -> dict[str, Any]:
    """Describe the broker.

    Returns a dict with ``running`` (process alive *and* answering
    ApiVersions), ``pid`` (int or None), ``bootstrap``, ``port``,
    ``controller_port``, ``data_dir`` and ``log_file`` (strings).
    """
    pid = running_pid(cfg)
    return {
        "running": pid is not None and answers(cfg.host, cfg.port),
        "pid": pid,
        "bootstrap": bootstrap(cfg),
        "port": cfg.port,
        "controller_port": cfg.controller_port,
        "data_dir": str(cfg.data_dir),
        "log_file": str(cfg.log_file),
    }
