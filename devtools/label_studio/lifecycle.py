"""``up``, ``down`` and ``status`` of the local Label Studio: idempotent, safe across processes.

The admin user and its API token are made at the first start, without prompts, from
``credentials.json`` (drawn once, kept beside the data, readable by its owner only). Label Studio 1.23
refuses legacy tokens in a new organisation; the local one turns them on at its creation on purpose
(``LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN``), so the demo, the tests and the bridge share one token that
never expires. A team's own Label Studio can keep them off: the bridge takes a personal access token too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from devtools.errors import LabelStudioError
from devtools.host_tools import log_tail
from devtools.label_studio.config import LOCALHOST, LOCK_FILE, LabelStudioConfig
from devtools.local_kafka.processes import pid_alive, wait_exit
from devtools.local_kafka.wire import port_open
from devtools.locks import file_lock

__all__ = ["down", "install", "status", "up"]

logger = logging.getLogger(__name__)

# What Label Studio must not do here: call pypi.org at start, report errors or usage, refuse the bridge's
# webhook on 127.0.0.1 (its SSRF guard), or let anyone on the machine sign up (and so read every task).
_QUIET = {"LATEST_VERSION_CHECK": "false", "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "", "COLLECT_ANALYTICS": "false",
          "SSRF_PROTECTION_ENABLED": "false", "DISABLE_SIGNUP_WITHOUT_LINK": "true"}
# Names it reads that a shell may hold for something else: the bare USERNAME/PASSWORD/HOST/PORT, and whatever
# would point its database or its settings elsewhere.
_UNSET = ("USERNAME", "PASSWORD", "HOST", "PORT")
_UNSET_PREFIXES = ("LABEL_STUDIO_", "DJANGO_", "POSTGRE_", "MYSQL_", "REDIS_")


def _lock_digest() -> str:
    return hashlib.sha256(LOCK_FILE.read_bytes()).hexdigest()


def install(cfg: LabelStudioConfig) -> Path:
    """Label Studio's own environment, installed from the lock file when missing or out of date (about a
    minute and 1 GB the first time); returns its ``label-studio`` executable."""
    stamp = cfg.venv / ".installed"
    executable = cfg.venv / "bin" / "label-studio"
    if stamp.is_file() and stamp.read_text() == _lock_digest() and executable.is_file():
        return executable
    logger.info("installing Label Studio into %s (once)", cfg.venv)
    python = cfg.venv / "bin" / "python"
    try:
        if not python.is_file():
            subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(cfg.venv)], check=True)
            subprocess.run([str(python), "-m", "ensurepip", "--upgrade"], check=True, capture_output=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "-r", str(LOCK_FILE)], check=True)
    except subprocess.CalledProcessError as exc:
        raise LabelStudioError(f"installing Label Studio into {cfg.venv} failed (exit {exc.returncode})") from None
    stamp.write_text(_lock_digest())
    return executable


def credentials(cfg: LabelStudioConfig) -> dict[str, str]:
    """The admin's e-mail, password and API token: drawn at the first start, the same ever after."""
    if cfg.credentials_file.is_file():
        return json.loads(cfg.credentials_file.read_text())
    if cfg.data_dir.is_dir() and any(cfg.data_dir.iterdir()):
        raise LabelStudioError(f"{cfg.data_dir} holds a Label Studio but {cfg.credentials_file} is gone: "
                               f"remove {cfg.home} to start afresh")
    made = {"username": "reviewer@example.com", "password": secrets.token_urlsafe(12), "token": secrets.token_hex(20)}
    _private_home(cfg)
    descriptor = os.open(cfg.credentials_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(made, handle)
    return made


def _private_home(cfg: LabelStudioConfig) -> None:
    """The home (data with customer text, credentials, log) readable by its owner only."""
    cfg.home.mkdir(parents=True, exist_ok=True)
    os.chmod(cfg.home, 0o700)


def _environment(cfg: LabelStudioConfig, creds: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _UNSET and not k.startswith(_UNSET_PREFIXES)}
    env.update(_QUIET)
    env.update({"LABEL_STUDIO_BASE_DATA_DIR": str(cfg.data_dir), "LABEL_STUDIO_USERNAME": creds["username"],
                "LABEL_STUDIO_PASSWORD": creds["password"], "LABEL_STUDIO_USER_TOKEN": creds["token"],
                "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true"})
    return env


def _read_pid(cfg: LabelStudioConfig) -> int | None:
    try:
        pid = int(cfg.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    # pid reuse: it must be our executable serving our port
    ours = any(arg.endswith(b"label-studio") for arg in argv) and str(cfg.port).encode() in argv
    return pid if ours and pid_alive(pid) else None


def _healthy(cfg: LabelStudioConfig) -> bool:
    try:
        return httpx.get(f"{cfg.url}/health", timeout=2).json().get("status") == "UP"
    except (httpx.HTTPError, ValueError):
        return False


def _wait_ready(cfg: LabelStudioConfig, pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not _healthy(cfg):
        if not pid_alive(pid):
            raise LabelStudioError(f"Label Studio (pid {pid}) exited during start-up; last lines of "
                                   f"{cfg.log_file}:\n{log_tail(cfg.log_file, 30)}")
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(0.5)


def up(cfg: LabelStudioConfig, timeout: float = 180) -> dict[str, Any]:
    """Install and start Label Studio on 127.0.0.1 unless it runs; returns :func:`status`."""
    _private_home(cfg)
    with file_lock(cfg.lock_file):
        pid = _read_pid(cfg)
        if pid is None:
            if port_open(LOCALHOST, cfg.port):
                raise LabelStudioError(f"{LOCALHOST}:{cfg.port} is in use by a process this tool did not start; "
                                       f"stop it or set SLM_LABEL_STUDIO_PORT")
            executable = install(cfg)
            creds = credentials(cfg)
            cfg.data_dir.mkdir(parents=True, exist_ok=True)
            if cfg.log_file.exists():
                os.replace(cfg.log_file, cfg.log_file.with_name(cfg.log_file.name + ".1"))
            # --internal-host is what it binds to; --host would only change the URL it prints.
            command = [str(executable), "start", "--internal-host", LOCALHOST, "--port", str(cfg.port), "--no-browser"]
            with open(cfg.log_file, "ab") as log:
                process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                           cwd=cfg.home, env=_environment(cfg, creds), start_new_session=True)
            pid = process.pid
            cfg.pid_file.write_text(f"{pid}\n")
            logger.info("starting Label Studio pid %d at %s (log: %s)", pid, cfg.url, cfg.log_file)
        try:
            _wait_ready(cfg, pid, timeout)
        except TimeoutError:
            _stop(cfg, pid)
            raise LabelStudioError(f"Label Studio did not answer at {cfg.url}/health within {timeout:.0f}s (stopped "
                                   f"it); last lines of {cfg.log_file}:\n{log_tail(cfg.log_file, 30)}") from None
    return status(cfg)


def _stop(cfg: LabelStudioConfig, pid: int, timeout: float = 20) -> None:
    logger.info("stopping Label Studio pid %d", pid)
    try:
        os.killpg(pid, signal.SIGTERM)  # its own session: the server and any worker it started
    except ProcessLookupError:
        pass
    if not wait_exit(pid, time.monotonic() + timeout):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_exit(pid, time.monotonic() + 10)
    cfg.pid_file.unlink(missing_ok=True)


def down(cfg: LabelStudioConfig) -> None:
    """Stop the local Label Studio if it runs; its data stays."""
    if not cfg.home.is_dir():
        return
    with file_lock(cfg.lock_file):
        pid = _read_pid(cfg)
        if pid is not None:
            _stop(cfg, pid)
        cfg.pid_file.unlink(missing_ok=True)


def status(cfg: LabelStudioConfig) -> dict[str, Any]:
    """``running``, ``url``, ``token`` (and the admin's ``username`` and ``password`` for the browser), ``pid``,
    ``data_dir``, ``log_file``."""
    pid = _read_pid(cfg)
    creds = json.loads(cfg.credentials_file.read_text()) if cfg.credentials_file.is_file() else {}
    return {"running": pid is not None and _healthy(cfg), "url": cfg.url, "token": creds.get("token"),
            "username": creds.get("username"), "password": creds.get("password"), "pid": pid,
            "data_dir": str(cfg.data_dir), "log_file": str(cfg.log_file)}
