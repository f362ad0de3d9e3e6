"""The broker's JVM processes: storage format, launch, pid file, liveness, stop."""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Final

from devtools.errors import BrokerError
from devtools.host_tools import log_tail, tail
from devtools.local_kafka.config import BrokerConfig, bootstrap
from devtools.local_kafka.security import SCRAM_USER, SecurityFiles, scram_command
from devtools.local_kafka.tool_runs import LOG_TAIL_LINES, run_tool

__all__ = ["broker_log_tail", "create_scram_user", "format_storage", "launch", "pid_alive", "running_pid", "stop", "wait_exit"]

logger = logging.getLogger(__name__)

_JVM_OPTS: Final = (
    "-Xmx512m",
    "-Xms256m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
_MAIN_CLASS: Final = "kafka.Kafka"
_STORAGE_TOOL: Final = "kafka.tools.StorageTool"
_FORMAT_TIMEOUT_S: Final = 120.0
POLL_S: Final = 0.2

# Popen handles of brokers started by this process, so that they are reaped
# (no zombies, no ResourceWarning) when `down` runs in the same process.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _read_pid(cfg: BrokerConfig) -> int | None:
    """Return the pid recorded in the pid file, or None."""
    try:
        return int(cfg.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """Return True if *pid* is a live (non-zombie) process."""
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        _CHILDREN.pop(pid, None)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError, IndexError):
        # state is the field after the parenthesised command name
        if stat.read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False
    return True


def _is_our_broker(cfg: BrokerConfig, pid: int) -> bool:
    """Return True if *pid* is alive and is the broker for *cfg*.

    Guards against pid reuse: on Linux the command line must name
    ``kafka.Kafka`` and this data dir's ``server.properties``.  Where
    ``/proc`` is unavailable, liveness alone is used.
    """
    if not pid_alive(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return sys.platform != "linux"
    return _MAIN_CLASS.encode() in argv and str(cfg.properties_file).encode() in argv


def running_pid(cfg: BrokerConfig) -> int | None:
    """Return the pid of this config's broker if it is alive, else None."""
    pid = _read_pid(cfg)
    if pid is not None and _is_our_broker(cfg, pid):
        return pid
    return None


def broker_log_tail(cfg: BrokerConfig, lines: int = LOG_TAIL_LINES) -> str:
    """Return the last *lines* lines of the broker log (or a placeholder)."""
    return log_tail(cfg.log_file, lines)


def _java_base(cfg: BrokerConfig, java: str) -> list[str]:
    """Return the ``java`` command prefix with JVM options and classpath."""
    return [java, *_JVM_OPTS, f"-Dlog4j2.configurationFile=file:{cfg.log4j_file}", "-cp", str(cfg.libs_dir / "*")]


def _cluster_id() -> str:
    """Return a random Kafka cluster id (URL-safe base64 of a UUID, no padding).

    Like Kafka's ``Uuid.randomUuid``, ids starting with ``-`` are avoided so
    they are never mistaken for command-line flags.
    """
    while True:
        value = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not value.startswith("-"):
            return value


def format_storage(cfg: BrokerConfig, java: str) -> None:
    """Format the KRaft metadata log once (skipped if ``meta.properties`` exists).

    Kafka 4.x uses a dynamic controller quorum (``controller.quorum.bootstrap.servers``)
    which must be formatted with ``--standalone`` for a single controller.
    """
    if (cfg.log_dirs / "meta.properties").is_file():
        return
    cluster_id = _cluster_id()
    cmd = [
        *_java_base(cfg, java),
        _STORAGE_TOOL, "format",
        "-t", cluster_id,
        "-c", str(cfg.properties_file),
        "--standalone",
    ]  # fmt: skip
    logger.info("formatting Kafka storage in %s (cluster id %s)", cfg.log_dirs, cluster_id)
    proc = run_tool(cmd, _FORMAT_TIMEOUT_S, "kafka storage format")
    if proc.returncode != 0:
        raise BrokerError(
            f"kafka storage format failed (exit {proc.returncode}):\n"
            f"{tail(proc.stdout.decode(errors='replace'), LOG_TAIL_LINES)}"
        )


def create_scram_user(cfg: BrokerConfig, java: str) -> None:
    """Create (or update) the SCRAM-SHA-512 user of the secured broker with Kafka's ``kafka-configs``."""
    password = SecurityFiles(cfg.security_dir).scram_password()
    proc = run_tool(scram_command(_java_base(cfg, java), bootstrap(cfg), password), _FORMAT_TIMEOUT_S,
                    "kafka-configs (SCRAM user)")
    if proc.returncode != 0:
        # The tool's output never holds the password; the command line does, so it is not shown.
        raise BrokerError(f"creating the SCRAM user {SCRAM_USER} failed (exit {proc.returncode}):\n"
                          f"{tail(proc.stdout.decode(errors='replace'), LOG_TAIL_LINES)}")


def launch(cfg: BrokerConfig, java: str) -> int:
    """Start the broker in a session of its own, its output to the log; record and return its pid."""
    if cfg.log_file.exists():
        os.replace(cfg.log_file, cfg.log_file.with_name(cfg.log_file.name + ".1"))
    cmd = [*_java_base(cfg, java), _MAIN_CLASS, str(cfg.properties_file)]
    with open(cfg.log_file, "ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cfg.data_dir,
            start_new_session=True,
        )
    _CHILDREN[proc.pid] = proc
    tmp = cfg.pid_file.with_name(cfg.pid_file.name + ".tmp")
    tmp.write_text(f"{proc.pid}\n")
    os.replace(tmp, cfg.pid_file)
    logger.info("starting Kafka broker pid %d at %s (log: %s)", proc.pid, bootstrap(cfg), cfg.log_file)
    return proc.pid


def wait_exit(pid: int, deadline: float) -> bool:
    """Poll until *pid* is gone; return False if *deadline* passes first."""
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)
    return True


def stop(cfg: BrokerConfig, pid: int, timeout: float) -> None:
    """SIGTERM *pid*, wait up to *timeout*, then SIGKILL its process group."""
    logger.info("stopping Kafka broker pid %d", pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not wait_exit(pid, time.monotonic() + timeout):
        logger.warning("Kafka broker pid %d ignored SIGTERM for %.0fs; killing it", pid, timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)  # start_new_session=True: pgid == pid
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if not wait_exit(pid, time.monotonic() + 10):
            raise BrokerError(f"Kafka broker pid {pid} survived SIGKILL")
    _CHILDREN.pop(pid, None)
    cfg.pid_file.unlink(missing_ok=True)
