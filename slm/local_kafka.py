"""Manage a single-node Apache Kafka broker for local development, tests and CI.

The broker runs in KRaft mode (combined broker + controller, no ZooKeeper) and
is launched straight from the Kafka jars on Maven Central: ``mvn`` copies
``kafka_2.13`` and its runtime dependencies (listed in ``kafka-pom.xml`` next to
this module) into ``<cache_dir>/kafka-<version>/libs`` once, and the broker is
then started with ``java -cp '<libs>/*' kafka.Kafka server.properties``.  Only
``java`` (17+) and ``mvn`` are needed; no Kafka distribution, no Docker.

Everything listens on, and is probed at, ``127.0.0.1`` only.

Typical use::

    cfg = BrokerConfig.from_env()
    up(cfg)                      # idempotent; returns once the broker answers
    print(bootstrap(cfg))        # "127.0.0.1:9092"
    down(cfg)                    # idempotent

Readiness is checked by sending a real Kafka ``ApiVersions`` (v0) request over a
plain socket (see :func:`api_versions`), so this module needs nothing outside
the standard library.  Topics are created on demand elsewhere (kafka-python's
admin client) or through ``auto.create.topics.enable``.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

__all__ = [
    "BrokerConfig",
    "BrokerError",
    "api_versions",
    "bootstrap",
    "down",
    "install",
    "kafka_version",
    "status",
    "up",
]

logger = logging.getLogger(__name__)

#: The only interface the broker binds to and the only address probed.
LOCALHOST: Final = "127.0.0.1"

_PACKAGE_DIR: Final = Path(__file__).resolve().parent
_REPO_ROOT: Final = _PACKAGE_DIR.parent
_POM: Final = _PACKAGE_DIR / "kafka-pom.xml"
_POM_NS: Final = {"m": "http://maven.apache.org/POM/4.0.0"}

_MARKER_NAME: Final = ".slm-complete"
_PID_NAME: Final = "broker.pid"
_LOG_NAME: Final = "broker.log"
_PROPERTIES_NAME: Final = "server.properties"
_LOG4J_NAME: Final = "log4j2.properties"
_LOCK_NAME: Final = ".slm-kafka.lock"

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

_MVN_TIMEOUT_S: Final = 900.0
_FORMAT_TIMEOUT_S: Final = 120.0
_POLL_S: Final = 0.2
_LOG_TAIL_LINES: Final = 30

_API_VERSIONS_KEY: Final = 18
_CORRELATION_ID: Final = 0x534C4D31  # "SLM1"
_CLIENT_ID: Final = b"slm-local-kafka"
_MAX_RESPONSE_BYTES: Final = 1 << 20

# Popen handles of brokers started by this process, so that they are reaped
# (no zombies, no ResourceWarning) when `down` runs in the same process.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class BrokerError(RuntimeError):
    """Raised when the local broker cannot be installed, started or stopped."""


def _default_cache_dir() -> Path:
    """Return ``$SLM_CACHE_DIR`` or ``<repo>/.cache``."""
    env = os.environ.get("SLM_CACHE_DIR")
    return Path(env).expanduser() if env else _REPO_ROOT / ".cache"


@dataclass(frozen=True)
class BrokerConfig:
    """Where and how the local broker runs.

    Attributes:
        host: Listener address; always ``127.0.0.1``.
        port: PLAINTEXT (client) listener port.
        controller_port: KRaft controller listener port; ``None`` (the
            default) means ``port + 1``, so the default is 9093.
        cache_dir: Shared cache; the jars live in
            ``<cache_dir>/kafka-<version>/libs``.  Defaults to
            ``$SLM_CACHE_DIR`` or ``<repo>/.cache``.
        data_dir: Broker state (config, pid file, log, Kafka log dirs);
            ``None`` (the default) means ``<cache_dir>/kafka-data-<port>``.
        default_partitions: ``num.partitions`` for auto-created topics.
    """

    host: str = LOCALHOST
    port: int = 9092
    controller_port: int = None  # type: ignore[assignment]  # resolved in __post_init__
    cache_dir: Path = field(default_factory=_default_cache_dir)
    data_dir: Path = None  # type: ignore[assignment]  # resolved in __post_init__
    default_partitions: int = 3

    def __post_init__(self) -> None:
        """Resolve derived defaults and validate the values."""
        if self.host != LOCALHOST:
            raise BrokerError(f"the local broker only binds to {LOCALHOST}, not {self.host!r}")
        if self.controller_port is None:
            object.__setattr__(self, "controller_port", self.port + 1)
        object.__setattr__(self, "cache_dir", Path(self.cache_dir).expanduser().absolute())
        if self.data_dir is None:
            object.__setattr__(self, "data_dir", self.cache_dir / f"kafka-data-{self.port}")
        else:
            object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser().absolute())
        for name in ("port", "controller_port"):
            value = getattr(self, name)
            if not 0 < value < 65536:
                raise BrokerError(f"{name} must be in 1..65535, got {value}")
        if self.port == self.controller_port:
            raise BrokerError(f"port and controller_port must differ (both {self.port})")
        if self.default_partitions < 1:
            raise BrokerError(f"default_partitions must be >= 1, got {self.default_partitions}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BrokerConfig:
        """Build a config from environment variables.

        Reads ``SLM_KAFKA_PORT``, ``SLM_KAFKA_CONTROLLER_PORT`` (optional,
        default port + 1), ``SLM_KAFKA_DATA_DIR``, ``SLM_CACHE_DIR`` and
        ``SLM_KAFKA_PARTITIONS``; unset or empty variables keep the defaults.
        """
        env = os.environ if environ is None else environ
        kwargs: dict[str, Any] = {}
        for var, key in (
            ("SLM_KAFKA_PORT", "port"),
            ("SLM_KAFKA_CONTROLLER_PORT", "controller_port"),
            ("SLM_KAFKA_PARTITIONS", "default_partitions"),
        ):
            raw = env.get(var, "").strip()
            if raw:
                try:
                    kwargs[key] = int(raw)
                except ValueError:
                    raise BrokerError(f"{var} must be an integer, got {raw!r}") from None
        for var, key in (("SLM_CACHE_DIR", "cache_dir"), ("SLM_KAFKA_DATA_DIR", "data_dir")):
            raw = env.get(var, "").strip()
            if raw:
                kwargs[key] = Path(raw)
        return cls(**kwargs)

    @property
    def libs_dir(self) -> Path:
        """Directory holding the broker jars."""
        return self.cache_dir / f"kafka-{kafka_version()}" / "libs"

    @property
    def log_file(self) -> Path:
        """Broker log (log4j output plus the JVM's stdout/stderr)."""
        return self.data_dir / _LOG_NAME

    @property
    def pid_file(self) -> Path:
        """File holding the broker's process id while it runs."""
        return self.data_dir / _PID_NAME

    @property
    def properties_file(self) -> Path:
        """Generated ``server.properties``."""
        return self.data_dir / _PROPERTIES_NAME

    @property
    def log_dirs(self) -> Path:
        """Kafka ``log.dirs`` (topic data and KRaft metadata)."""
        return self.data_dir / "logs"


@lru_cache(maxsize=1)
def kafka_version() -> str:
    """Return the Kafka version pinned in ``kafka-pom.xml``."""
    try:
        root = ET.parse(_POM).getroot()
    except (OSError, ET.ParseError) as exc:
        raise BrokerError(f"cannot read {_POM}: {exc}") from exc
    version = root.findtext("m:properties/m:kafka.version", namespaces=_POM_NS)
    if not version or not version.strip():
        raise BrokerError(f"{_POM} has no <kafka.version> property")
    return version.strip()


def bootstrap(cfg: BrokerConfig) -> str:
    """Return the ``bootstrap.servers`` string for *cfg*, e.g. ``127.0.0.1:9092``."""
    return f"{cfg.host}:{cfg.port}"


# --------------------------------------------------------------------------- install


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on *path* (created if needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _pom_digest() -> str:
    """Return a digest of the pom, stored in the marker to detect pom edits."""
    try:
        return hashlib.sha256(_POM.read_bytes()).hexdigest()
    except OSError as exc:
        raise BrokerError(f"cannot read {_POM}: {exc}") from exc


def _require(tool: str, hint: str) -> str:
    """Return the full path of *tool* on ``PATH`` or raise :class:`BrokerError`."""
    found = shutil.which(tool)
    if found is None:
        raise BrokerError(f"`{tool}` not found on PATH; {hint}")
    return found


def install(cfg: BrokerConfig) -> Path:
    """Download the broker jars with Maven once and return the libs directory.

    Idempotent: when ``<libs>/.slm-complete`` exists and matches the current
    pom, nothing is done.  Maven output is captured and only shown (inside the
    raised :class:`BrokerError`) when it fails.  Concurrent callers are
    serialised with a file lock; the jars are copied to a scratch directory
    and renamed into place, so a half-finished download is never used.
    """
    libs = cfg.libs_dir
    marker = libs / _MARKER_NAME
    digest = _pom_digest()
    if marker.is_file() and marker.read_text().strip() == digest:
        return libs
    with _file_lock(libs.parent / ".install.lock"):
        if marker.is_file() and marker.read_text().strip() == digest:
            return libs
        mvn = _require("mvn", "install Apache Maven to fetch the Kafka jars")
        scratch = libs.with_name(f"libs.tmp-{os.getpid()}")
        shutil.rmtree(scratch, ignore_errors=True)
        cmd = [
            mvn, "-B", "-q", "-f", str(_POM),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={scratch}",
        ]  # fmt: skip
        logger.info("fetching Kafka %s jars into %s (one-off)", kafka_version(), libs)
        started = time.monotonic()
        try:
            proc = _run_tool(cmd, _MVN_TIMEOUT_S, "mvn")
        except BrokerError:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        output = proc.stdout.decode(errors="replace")
        jars = sorted(scratch.glob("*.jar")) if scratch.is_dir() else []
        if proc.returncode != 0 or not jars:
            shutil.rmtree(scratch, ignore_errors=True)
            raise BrokerError(
                f"mvn failed (exit {proc.returncode}) fetching the Kafka jars:\n"
                f"$ {' '.join(cmd)}\n{_tail(output, 60)}"
            )
        (scratch / _MARKER_NAME).write_text(digest + "\n")
        shutil.rmtree(libs, ignore_errors=True)
        os.replace(scratch, libs)
        logger.info("fetched %d jars in %.1fs", len(jars), time.monotonic() - started)
        return libs


def _run_tool(cmd: list[str], timeout: float, what: str) -> subprocess.CompletedProcess:
    """Run a set-up tool with its output captured; a time-out becomes a :class:`BrokerError`."""
    try:
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BrokerError(f"{what} timed out after {timeout:.0f}s: {' '.join(cmd)}") from exc


# --------------------------------------------------------------------------- probing


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    """Read exactly *n* bytes from *sock*."""
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        buf += chunk
    return bytes(buf)


def api_versions(host: str, port: int, timeout: float = 2.0) -> dict[int, tuple[int, int]]:
    """Send a Kafka ``ApiVersions`` v0 request; return ``{api_key: (min, max)}``.

    Request: ``size:int32 | api_key:int16=18 | api_version:int16=0 |
    correlation_id:int32 | client_id:string`` (request header v1, empty body).
    Response: ``size:int32 | correlation_id:int32 | error_code:int16 |
    [api_key:int16 min:int16 max:int16]`` (response header v0).

    Raises:
        OSError: on connection problems (including timeouts).
        BrokerError: if the peer does not answer like a Kafka broker.
    """
    header = struct.pack(">hhih", _API_VERSIONS_KEY, 0, _CORRELATION_ID, len(_CLIENT_ID))
    request = header + _CLIENT_ID
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        if not 10 <= size <= _MAX_RESPONSE_BYTES:
            raise BrokerError(f"{host}:{port}: implausible ApiVersions response size {size}")
        payload = _recv_exact(sock, size)
    try:
        correlation_id, error_code, count = struct.unpack_from(">ihi", payload, 0)
        if correlation_id != _CORRELATION_ID:
            raise BrokerError(f"{host}:{port}: correlation id mismatch ({correlation_id:#x})")
        if error_code != 0:
            raise BrokerError(f"{host}:{port}: ApiVersions error code {error_code}")
        if not 0 < count <= (size - 10) // 6:
            raise BrokerError(f"{host}:{port}: implausible ApiVersions count {count}")
        versions: dict[int, tuple[int, int]] = {}
        for i in range(count):
            key, lo, hi = struct.unpack_from(">hhh", payload, 10 + 6 * i)
            versions[key] = (lo, hi)
    except struct.error as exc:
        raise BrokerError(f"{host}:{port}: malformed ApiVersions response: {exc}") from exc
    return versions


def _answers(cfg: BrokerConfig, timeout: float = 1.0) -> bool:
    """Return True if the broker port answers an ApiVersions request."""
    try:
        return _API_VERSIONS_KEY in api_versions(cfg.host, cfg.port, timeout=timeout)
    except (OSError, BrokerError):
        return False


def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Return True if something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------- processes


def _read_pid(cfg: BrokerConfig) -> int | None:
    """Return the pid recorded in the pid file, or None."""
    try:
        return int(cfg.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def _pid_alive(pid: int) -> bool:
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
    if not _pid_alive(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return sys.platform != "linux"
    return _MAIN_CLASS.encode() in argv and str(cfg.properties_file).encode() in argv


def _running_pid(cfg: BrokerConfig) -> int | None:
    """Return the pid of this config's broker if it is alive, else None."""
    pid = _read_pid(cfg)
    if pid is not None and _is_our_broker(cfg, pid):
        return pid
    return None


def _tail(text: str, lines: int = _LOG_TAIL_LINES) -> str:
    """Return the last *lines* lines of *text*."""
    return "\n".join(text.splitlines()[-lines:])


def _log_tail(cfg: BrokerConfig, lines: int = _LOG_TAIL_LINES) -> str:
    """Return the last *lines* lines of the broker log (or a placeholder)."""
    try:
        with open(cfg.log_file, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 256 * 1024))
            data = fh.read().decode(errors="replace")
    except OSError:
        return f"(no log at {cfg.log_file})"
    return _tail(data, lines)


# --------------------------------------------------------------------------- config


def _server_properties(cfg: BrokerConfig) -> str:
    """Render ``server.properties`` for a single-node KRaft broker+controller."""
    listeners = f"PLAINTEXT://{cfg.host}:{cfg.port},CONTROLLER://{cfg.host}:{cfg.controller_port}"
    settings: dict[str, str | int] = {
        "process.roles": "broker,controller",
        "node.id": 1,
        "controller.quorum.bootstrap.servers": f"{cfg.host}:{cfg.controller_port}",
        "listeners": listeners,
        "advertised.listeners": listeners,
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(cfg.log_dirs),
        "num.partitions": cfg.default_partitions,
        "default.replication.factor": 1,
        "min.insync.replicas": 1,
        "auto.create.topics.enable": "true",
        "delete.topic.enable": "true",
        "offsets.topic.replication.factor": 1,
        "offsets.topic.num.partitions": 10,
        "transaction.state.log.replication.factor": 1,
        "transaction.state.log.min.isr": 1,
        "transaction.state.log.num.partitions": 10,
        "share.coordinator.state.topic.replication.factor": 1,
        "share.coordinator.state.topic.min.isr": 1,
        "group.initial.rebalance.delay.ms": 0,
        "num.network.threads": 2,
        "num.io.threads": 4,
        "log.retention.hours": 24,
    }
    lines = ["# Generated by slm.local_kafka; rewritten on every `up`."]
    lines += [f"{key}={value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def _log4j_properties(cfg: BrokerConfig) -> str:
    """Render a log4j2 properties config that appends to the broker log."""
    log_file = str(cfg.log_file).replace("\\", "\\\\")
    return (
        "# Generated by slm.local_kafka.\n"
        "status = warn\n"
        "shutdownHook = disable\n"
        "name = slm-local-kafka\n"
        "appender.file.type = File\n"
        "appender.file.name = FILE\n"
        f"appender.file.fileName = {log_file}\n"
        "appender.file.append = true\n"
        "appender.file.layout.type = PatternLayout\n"
        "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
        "rootLogger.level = INFO\n"
        "rootLogger.appenderRef.file.ref = FILE\n"
        # the full config dumps are ~1700 lines per start
        "logger.config.name = org.apache.kafka.common.config.AbstractConfig\n"
        "logger.config.level = WARN\n"
        "logger.request.name = kafka.request.logger\n"
        "logger.request.level = WARN\n"
    )


def _write_if_changed(path: Path, text: str) -> None:
    """Write *text* to *path* unless it already holds exactly that."""
    with contextlib.suppress(OSError):
        if path.read_text() == text:
            return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _cluster_id() -> str:
    """Return a random Kafka cluster id (URL-safe base64 of a UUID, no padding).

    Like Kafka's ``Uuid.randomUuid``, ids starting with ``-`` are avoided so
    they are never mistaken for command-line flags.
    """
    while True:
        value = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not value.startswith("-"):
            return value


def _java_base(cfg: BrokerConfig, java: str) -> list[str]:
    """Return the ``java`` command prefix with JVM options and classpath."""
    return [
        java,
        *_JVM_OPTS,
        f"-Dlog4j2.configurationFile=file:{cfg.data_dir / _LOG4J_NAME}",
        "-cp",
        str(cfg.libs_dir / "*"),
    ]


def _format_storage(cfg: BrokerConfig, java: str) -> None:
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
    proc = _run_tool(cmd, _FORMAT_TIMEOUT_S, "kafka storage format")
    if proc.returncode != 0:
        raise BrokerError(
            f"kafka storage format failed (exit {proc.returncode}):\n"
            f"{_tail(proc.stdout.decode(errors='replace'))}"
        )


def describe_group(cfg: BrokerConfig, group: str, bootstrap_server: str | None = None) -> str:
    """Kafka's own ``kafka-consumer-groups --describe --members --verbose`` for ``group``."""
    java = _require("java", "install a Java 17+ runtime")
    cmd = [
        *_java_base(cfg, java),
        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
        "--bootstrap-server", bootstrap_server or bootstrap(cfg),
        "--describe", "--members", "--verbose", "--group", group,
    ]  # fmt: skip
    proc = _run_tool(cmd, 60, "kafka-consumer-groups")
    text = proc.stdout.decode(errors="replace")
    if proc.returncode != 0:
        raise BrokerError(f"kafka-consumer-groups failed (exit {proc.returncode}):\n{_tail(text)}")
    return text


# --------------------------------------------------------------------------- lifecycle


def _wait_ready(cfg: BrokerConfig, pid: int, deadline: float) -> None:
    """Poll until the broker answers ApiVersions, dies, or *deadline* passes."""
    while True:
        if not _pid_alive(pid):
            raise BrokerError(
                f"Kafka broker (pid {pid}) exited during start-up; "
                f"last lines of {cfg.log_file}:\n{_log_tail(cfg)}"
            )
        if _answers(cfg):  # TCP connect + ApiVersions round trip
            return
        if time.monotonic() >= deadline:
            raise TimeoutError
        time.sleep(_POLL_S)


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
    with _file_lock(cfg.data_dir / _LOCK_NAME):
        pid = _running_pid(cfg)
        if pid is not None:
            try:
                _wait_ready(cfg, pid, time.monotonic() + timeout)
            except TimeoutError:
                raise BrokerError(
                    f"Kafka broker pid {pid} is running but {bootstrap(cfg)} did not answer "
                    f"within {timeout:.0f}s; try `slm kafka down`. Log tail:\n{_log_tail(cfg)}"
                ) from None
            logger.debug("Kafka broker already running (pid %d) at %s", pid, bootstrap(cfg))
            return
        cfg.pid_file.unlink(missing_ok=True)
        for port in (cfg.port, cfg.controller_port):
            if _port_open(cfg.host, port):
                raise BrokerError(
                    f"{cfg.host}:{port} is already in use by a process this tool did not start "
                    f"(no live pid in {cfg.pid_file}); stop it or choose another SLM_KAFKA_PORT"
                )

        java = _require("java", "install a Java 17+ runtime to run the Kafka broker")
        install(cfg)
        started = time.monotonic()
        _write_if_changed(cfg.properties_file, _server_properties(cfg))
        _write_if_changed(cfg.data_dir / _LOG4J_NAME, _log4j_properties(cfg))
        _format_storage(cfg, java)

        if cfg.log_file.exists():
            os.replace(cfg.log_file, cfg.log_file.with_name(_LOG_NAME + ".1"))
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
        tmp = cfg.pid_file.with_name(_PID_NAME + ".tmp")
        tmp.write_text(f"{proc.pid}\n")
        os.replace(tmp, cfg.pid_file)
        logger.info(
            "starting Kafka broker pid %d at %s (log: %s)", proc.pid, bootstrap(cfg), cfg.log_file
        )

        try:
            _wait_ready(cfg, proc.pid, time.monotonic() + timeout)
        except TimeoutError:
            tail = _log_tail(cfg)
            _stop(cfg, proc.pid, timeout=10)
            raise BrokerError(
                f"Kafka broker did not answer on {bootstrap(cfg)} within {timeout:.0f}s "
                f"(stopped it); last lines of {cfg.log_file}:\n{tail}"
            ) from None
        except BrokerError:
            cfg.pid_file.unlink(missing_ok=True)
            raise
        logger.info("Kafka broker ready at %s in %.1fs", bootstrap(cfg), time.monotonic() - started)


def _wait_exit(pid: int, deadline: float) -> bool:
    """Poll until *pid* is gone; return False if *deadline* passes first."""
    while _pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_S)
    return True


def _stop(cfg: BrokerConfig, pid: int, timeout: float) -> None:
    """SIGTERM *pid*, wait up to *timeout*, then SIGKILL its process group."""
    logger.info("stopping Kafka broker pid %d", pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not _wait_exit(pid, time.monotonic() + timeout):
        logger.warning("Kafka broker pid %d ignored SIGTERM for %.0fs; killing it", pid, timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)  # start_new_session=True: pgid == pid
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if not _wait_exit(pid, time.monotonic() + 10):
            raise BrokerError(f"Kafka broker pid {pid} survived SIGKILL")
    _CHILDREN.pop(pid, None)
    cfg.pid_file.unlink(missing_ok=True)


def down(cfg: BrokerConfig, timeout: float = 30) -> None:
    """Stop the broker: SIGTERM, wait up to *timeout* seconds, then SIGKILL.

    Idempotent: does nothing (except removing a stale pid file) when the
    broker is not running.  Data in ``data_dir`` is kept.
    """
    if not cfg.data_dir.is_dir():
        return
    with _file_lock(cfg.data_dir / _LOCK_NAME):
        pid = _running_pid(cfg)
        if pid is None:
            if cfg.pid_file.exists():
                logger.debug("removing stale pid file %s", cfg.pid_file)
                cfg.pid_file.unlink(missing_ok=True)
            return
        _stop(cfg, pid, timeout)


def status(cfg: BrokerConfig) -> dict[str, Any]:
    """Describe the broker.

    Returns a dict with ``running`` (process alive *and* answering
    ApiVersions), ``pid`` (int or None), ``bootstrap``, ``port``,
    ``controller_port``, ``data_dir`` and ``log_file`` (strings).
    """
    pid = _running_pid(cfg)
    return {
        "running": pid is not None and _answers(cfg),
        "pid": pid,
        "bootstrap": bootstrap(cfg),
        "port": cfg.port,
        "controller_port": cfg.controller_port,
        "data_dir": str(cfg.data_dir),
        "log_file": str(cfg.log_file),
    }
