"""Where and how the local broker runs: the Kafka version, ports, folders, default partitions.

Its settings are :class:`LocalBrokerSettings` (``SLM_KAFKA_PORT``,
``SLM_KAFKA_CONTROLLER_PORT``, ``SLM_KAFKA_DATA_DIR``), ``SLM_KAFKA_PARTITIONS``
(:attr:`shared.kafka.settings.KafkaSettings.partitions`, which also sizes the topics the services
create) and ``SLM_CACHE_DIR`` (:class:`shared.settings.WorkspaceSettings`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Final

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from devtools.errors import BrokerError
from devtools.host_tools import free_port
from shared.kafka.settings import KafkaSettings
from shared.settings import WorkspaceSettings, invalid_setting

__all__ = ["LOCALHOST", "POM", "BrokerConfig", "LocalBrokerSettings", "bootstrap", "kafka_version"]

#: The only interface the broker binds to and the only address probed.
LOCALHOST: Final = "127.0.0.1"
#: The Maven project that names the broker's jars and pins the Kafka version.
POM: Final = Path(__file__).resolve().with_name("kafka-pom.xml")
_POM_NS: Final = {"m": "http://maven.apache.org/POM/4.0.0"}


class LocalBrokerSettings(BaseSettings):
    """The local development broker that ``slm kafka up`` runs (env prefix ``SLM_KAFKA_``).

    Its default partition count is :attr:`KafkaSettings.partitions` (``SLM_KAFKA_PARTITIONS``), and its
    cache folder :attr:`WorkspaceSettings.cache_dir`.

    Args:
        port (`int`, defaults to `9092`): the client listener's port.
        controller_port (`int | None`): the KRaft controller's port; defaults to ``port + 1``.
        data_dir (`Path | None`): the broker's state; defaults to ``<cache_dir>/kafka-data-<port>``.
    """

    model_config = SettingsConfigDict(env_prefix="SLM_KAFKA_", frozen=True, extra="ignore")

    port: int = 9092
    controller_port: int | None = None
    data_dir: Path | None = None


@lru_cache(maxsize=1)
def kafka_version() -> str:
    """Return the Kafka version pinned in ``kafka-pom.xml``."""
    try:
        root = ET.parse(POM).getroot()
    except (OSError, ET.ParseError) as exc:
        raise BrokerError(f"cannot read {POM}: {exc}") from exc
    version = root.findtext("m:properties/m:kafka.version", namespaces=_POM_NS)
    if not version or not version.strip():
        raise BrokerError(f"{POM} has no <kafka.version> property")
    return version.strip()


def _default_cache_dir() -> Path:
    """Return ``$SLM_CACHE_DIR`` or ``<repo>/.cache``."""
    return WorkspaceSettings().cache_dir


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
        cluster_listener: ``host:port`` of a second listener for the pods of the local Kubernetes
            cluster (:mod:`devtools.local_cluster`), on the node address of its bridge; ``None`` (the
            default): loopback only.
        secure: also listen with mutual TLS on ``ssl_port`` and SASL_SSL (SCRAM-SHA-512) on
            ``sasl_port`` (:mod:`devtools.local_kafka.security`); ``None`` ports mean ``port + 2`` and
            ``port + 3``.
    """

    host: str = LOCALHOST
    port: int = 9092
    controller_port: int = None  # type: ignore[assignment]  # resolved in __post_init__
    cache_dir: Path = field(default_factory=_default_cache_dir)
    data_dir: Path = None  # type: ignore[assignment]  # resolved in __post_init__
    default_partitions: int = 3
    cluster_listener: str | None = None
    secure: bool = False
    ssl_port: int = None  # type: ignore[assignment]  # resolved in __post_init__
    sasl_port: int = None  # type: ignore[assignment]  # resolved in __post_init__

    def __post_init__(self) -> None:
        """Resolve derived defaults and validate the values."""
        if self.host != LOCALHOST:
            raise BrokerError(f"the local broker only binds to {LOCALHOST}, not {self.host!r}")
        if self.controller_port is None:
            object.__setattr__(self, "controller_port", self.port + 1)
        if self.ssl_port is None:
            object.__setattr__(self, "ssl_port", self.port + 2)
        if self.sasl_port is None:
            object.__setattr__(self, "sasl_port", self.port + 3)
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
        if self.secure and len({self.port, self.controller_port, self.ssl_port, self.sasl_port}) != 4:
            raise BrokerError(f"port, controller_port, ssl_port and sasl_port must all differ, got "
                              f"{self.port}, {self.controller_port}, {self.ssl_port}, {self.sasl_port}")
        if self.default_partitions < 1:
            raise BrokerError(f"default_partitions must be >= 1, got {self.default_partitions}")
        if self.cluster_listener is not None:
            host, _, port = self.cluster_listener.rpartition(":")
            if not host or not port.isdigit() or int(port) in (self.port, self.controller_port):
                raise BrokerError(f"cluster_listener must be host:port on another port, got {self.cluster_listener!r}")

    @classmethod
    def on_free_ports(cls, data_dir: Path, *, secure: bool = False) -> BrokerConfig:
        """A private broker (a test's or a benchmark's own, to stop and restart at will) with every listener
        on a port nothing uses now, the usual jar cache and its state in *data_dir*."""
        ports = {"port": free_port(), "controller_port": free_port()}
        if secure:
            ports |= {"ssl_port": free_port(), "sasl_port": free_port()}
        return cls(**ports, cache_dir=_default_cache_dir(), data_dir=data_dir, secure=secure)

    @classmethod
    def from_settings(cls, broker: LocalBrokerSettings, kafka: KafkaSettings,
                      workspace: WorkspaceSettings) -> BrokerConfig:
        """The broker that ``broker`` describes, with ``kafka``'s partition count and ``workspace``'s cache."""
        return cls(port=broker.port, controller_port=broker.controller_port, cache_dir=workspace.cache_dir,
                   data_dir=broker.data_dir, default_partitions=kafka.partitions)

    @classmethod
    def from_env(cls) -> BrokerConfig:
        """Build a config from environment variables (see the module docstring); unset ones keep the defaults.

        Raises:
            BrokerError: a value that is not valid, with the variable's name.
        """
        try:
            return cls.from_settings(LocalBrokerSettings(), KafkaSettings(), WorkspaceSettings())
        except ValidationError as exc:
            raise BrokerError(invalid_setting(exc, extra=[LocalBrokerSettings])) from None

    @property
    def libs_dir(self) -> Path:
        """Directory holding the broker jars."""
        return self.cache_dir / f"kafka-{kafka_version()}" / "libs"

    @property
    def log_file(self) -> Path:
        """Broker log (log4j output plus the JVM's stdout/stderr)."""
        return self.data_dir / "broker.log"

    @property
    def pid_file(self) -> Path:
        """File holding the broker's process id while it runs."""
        return self.data_dir / "broker.pid"

    @property
    def properties_file(self) -> Path:
        """Generated ``server.properties``."""
        return self.data_dir / "server.properties"

    @property
    def log4j_file(self) -> Path:
        """Generated log4j2 configuration."""
        return self.data_dir / "log4j2.properties"

    @property
    def log_dirs(self) -> Path:
        """Kafka ``log.dirs`` (topic data and KRaft metadata)."""
        return self.data_dir / "logs"

    @property
    def security_dir(self) -> Path:
        """The secured listeners' CA, certificates and SCRAM password (``secure``)."""
        return self.data_dir / "security"

    @property
    def ports(self) -> tuple[int, ...]:
        """Every port this broker listens on, on ``host``."""
        return (self.port, self.controller_port, *((self.ssl_port, self.sasl_port) if self.secure else ()))

    @property
    def lock_file(self) -> Path:
        """Serialises ``up`` and ``down`` of this broker across processes."""
        return self.data_dir / ".slm-kafka.lock"


def bootstrap(cfg: BrokerConfig) -> str:
    """Return the ``bootstrap.servers`` string for *cfg*, e.g. ``127.0.0.1:9092``."""
    return f"{cfg.host}:{cfg.port}"
