"""Settings: one frozen pydantic-settings class per concern, and the one place ``SLM_*`` names are defined.

Each entry point (a CLI command, a BentoML service process, a Ray application builder) reads the
settings it needs once, validated, and passes the objects down. A serving process's settings
travel together as :class:`ServingSettings`: a Ray replica gets them bound to its deployment, and
a child process (``slm serve`` started by ``slm up``, ``bentoml serve`` exec'd by ``slm serve``)
gets the environment :func:`child_environment` renders from them. An ``SLM_*`` name in the
environment that no settings class defines is reported with the closest known name
(:func:`warn_unknown_settings`): a misspelt setting is otherwise silently ignored.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ImageSettings", "KafkaSettings", "REPO_ROOT", "ReplicaSettings", "SETTINGS_CLASSES",
           "SHADOW_SUFFIX", "ServiceSettings", "ServingSettings", "WorkspaceSettings", "child_environment",
           "default_model_dir", "invalid_setting", "known_setting_names", "service_import", "settings_env",
           "unknown_settings", "warn_unknown_settings"]

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]

# The end of a shadow's consumer group and of an explicit transactional id: neither may be the primary's.
SHADOW_SUFFIX = "-shadow"


class WorkspaceSettings(BaseSettings):
    """Where this checkout keeps its models and caches (env prefix ``SLM_``).

    Args:
        models_dir (`Path`, defaults to ``models/`` in the repository): ``<models_dir>/<task>`` is where
            ``slm train <task>`` writes and ``slm serve <task>`` reads by default.
        cache_dir (`Path`, defaults to ``.cache/`` in the repository): downloads kept between runs
            (the local broker's jars, its data folders).
    """

    model_config = SettingsConfigDict(env_prefix="SLM_", frozen=True, extra="ignore")

    models_dir: Path = REPO_ROOT / "models"
    cache_dir: Path = REPO_ROOT / ".cache"


def default_model_dir(task: str, workspace: WorkspaceSettings | None = None) -> Path:
    """``<models_dir>/<task>``: where ``slm train <task>`` writes and ``slm serve <task>`` reads by default
    (``workspace``: the caller's settings; read from the environment when not given)."""
    return (workspace or WorkspaceSettings()).models_dir / task


def service_import(task: str) -> str:
    """The BentoML service of ``task`` as ``module:Class`` (``services.helpdesk.service:Helpdesk``)."""
    return f"services.{task}.service:{task.title()}"


class ImageSettings(BaseSettings):
    """Names read outside Python, by the container image and the chart's model fetcher (env prefix ``SLM_``).

    Declared here so that every ``SLM_*`` name the chart renders has one owner.

    Args:
        task (`str | None`): the task the image serves; its command runs ``slm serve "$SLM_TASK"``.
        model_url (`str | None`): where the chart's init container fetches the model folder from
            (``model.initContainer.url``); its command reads it.
    """

    model_config = SettingsConfigDict(env_prefix="SLM_", frozen=True, extra="ignore")

    task: str | None = None
    model_url: str | None = None


class KafkaSettings(BaseSettings):
    """Kafka connection and consumer-loop settings (env prefix ``SLM_KAFKA_``).

    The loop is off when ``bootstrap`` is unset.
    """

    model_config = SettingsConfigDict(env_prefix="SLM_KAFKA_", frozen=True, extra="ignore")

    bootstrap: str | None = Field(default=None, description="host:port[,host:port]; unset disables Kafka")
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = Field(default=None, description="client certificate (PEM) for mutual TLS")
    ssl_keyfile: str | None = Field(default=None, description="its private key (PEM)")
    ssl_password: SecretStr | None = Field(default=None, description="the private key's password, if encrypted")
    sasl_oauth_token_file: str | None = Field(default=None, description=(
        "SASL OAUTHBEARER: a file holding the bearer token, read again for every new connection (a "
        "sidecar or a projected volume keeps it fresh)"))
    group_id: str | None = Field(default=None, description="defaults to slm-<task>")
    topic_prefix: str = Field(default="", description="prepended to every topic name")
    client_id: str | None = None
    partitions: int = Field(default=3, ge=1, description="partitions for topics created on demand")
    replication_factor: int = Field(default=1, ge=1)
    max_batch: int = Field(default=64, ge=1, le=10_000, description="records per micro-batch")
    poll_timeout_ms: int = Field(default=200, ge=1)
    rebalance_stall_s: float = Field(default=90.0, gt=0, description=(
        "a rebalance (partitions revoked, none assigned) lasting longer than this rebuilds the clients"))
    max_message_bytes: int = Field(default=65_536, ge=64, description="larger request values go to the DLQ")
    dlq_max_value_bytes: int = Field(default=262_144, ge=0, description=(
        "a DLQ record keeps at most this many bytes of the original value (headers original.size and "
        "original.truncated say what was cut; source.* point at the whole record)"))
    auto_offset_reset: str = Field(default="earliest", pattern="^(earliest|latest)$")
    create_topics: bool = True
    group_instance_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,249}$", description=(
        "static group membership (KIP-345): a restarted instance with the same id takes its partitions "
        "back at once instead of waiting for its predecessor's session to expire; the chart sets the pod "
        "name, a Ray replica appends its replica id"))
    session_timeout_ms: int = Field(default=30_000, ge=1_000, description=(
        "the broker drops a member (and rebalances) after this long without a heartbeat"))
    heartbeat_interval_ms: int = Field(default=3_000, ge=100, description="heartbeat period, under a third of the session")
    max_poll_interval_ms: int = Field(default=300_000, ge=1_000, description=(
        "the broker drops a member that has not polled for this long (a batch stuck in the model)"))
    reconnect_backoff_max_ms: int = Field(default=1_000, ge=50, description=(
        "longest wait between reconnection attempts to a broker that is down; kafka-python's 30 s made a "
        "10 s outage hold a batch for 25 s"))
    leave_group_on_stop: bool = Field(default=True, description=(
        "a static member that stops gracefully (SIGTERM) removes itself from the group, so its partitions "
        "move at once; a crash keeps them for the restart"))
    delivery: Literal["at_least_once", "exactly_once"] = Field(default="at_least_once", description=(
        "exactly_once: each micro-batch's results, review and DLQ records and its consumed offsets are one "
        "Kafka transaction, requests are read read_committed; downstream readers must read read_committed"))
    transactional_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,249}$", description=(
        "exactly_once: the producer's transactional.id, stable across restarts so a restart fences its "
        "predecessor and aborts its open transaction; defaults to <group>-<group_instance_id>"))
    transaction_timeout_ms: int = Field(default=60_000, ge=1_000, description=(
        "exactly_once: the broker aborts a transaction left open this long (a producer that died without "
        "a successor under the same transactional id)"))
    health_interval_s: float = Field(default=2.0, gt=0, description="how often an idle loop checks the broker")
    unready_after_s: float = Field(default=0.0, ge=0, description=(
        "above 0: /readyz also waits for the group join and answers 503 when the loop has not reached the "
        "broker for this long; 0 (default): a Kafka outage leaves REST in service"))
    stuck_after_s: float = Field(default=300.0, gt=0, description=(
        "/livez (and /healthz) answer 503 when the consumer loop has not come round its poll loop for this "
        "long, or stopped because it was fenced: only a restart helps then"))
    shadow: bool = Field(default=False, description=(
        "a second model version beside the primary: it consumes the same requests in its own group "
        "(slm-<task>-shadow), publishes to <task>.shadow.results only (no review, no DLQ records) and "
        "refuses REST /predict with 503; slm compare sets its answers against the primary's"))

    @model_validator(mode="after")
    def _credentials_complete(self) -> "KafkaSettings":
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise ValueError("ssl_certfile and ssl_keyfile go together (mutual TLS): set both or neither")
        if self.sasl_mechanism == "OAUTHBEARER" and not self.sasl_oauth_token_file:
            raise ValueError("sasl_mechanism=OAUTHBEARER needs sasl_oauth_token_file (SLM_KAFKA_SASL_OAUTH_TOKEN_FILE)")
        return self

    @model_validator(mode="after")
    def _shadow_needs_kafka(self) -> "KafkaSettings":
        if self.shadow and not self.bootstrap:
            raise ValueError("shadow=true needs bootstrap (SLM_KAFKA_BOOTSTRAP): a shadow answers Kafka requests only")
        return self

    @model_validator(mode="after")
    def _shadow_transactional_id_is_its_own(self) -> "KafkaSettings":
        # Under exactly-once a producer that initialises a transactional id fences every other holder of
        # it: a shadow given the primary's (an inherited SLM_KAFKA_TRANSACTIONAL_ID) would stop the
        # primary's next commit. The derived default is <shadow group>-<member id>, the primary's never.
        if self.shadow and self.transactional_id and not self.transactional_id.endswith(SHADOW_SUFFIX):
            raise ValueError(f"shadow=true: transactional_id={self.transactional_id!r} (SLM_KAFKA_TRANSACTIONAL_ID) "
                             f"does not end in {SHADOW_SUFFIX!r}: under exactly_once a shadow with the primary's "
                             f"id fences the primary's producer; unset it or give the shadow its own, ending "
                             f"in {SHADOW_SUFFIX!r}")
        return self

    @model_validator(mode="after")
    def _heartbeat_within_session(self) -> "KafkaSettings":
        if self.heartbeat_interval_ms * 3 > self.session_timeout_ms:
            raise ValueError(f"heartbeat_interval_ms={self.heartbeat_interval_ms} must be at most a third of "
                             f"session_timeout_ms={self.session_timeout_ms}")
        return self

    def group_options(self) -> dict:
        """Group-membership options of the consumer: static membership and the timeouts."""
        options = {"session_timeout_ms": self.session_timeout_ms, "heartbeat_interval_ms": self.heartbeat_interval_ms,
                   "max_poll_interval_ms": self.max_poll_interval_ms}
        if self.group_instance_id:
            options["group_instance_id"] = self.group_instance_id
        return options

    @property
    def exactly_once(self) -> bool:
        return self.delivery == "exactly_once"

    def transactional_id_for(self, group_id: str) -> str | None:
        """The producer's transactional id under exactly-once (None otherwise): the setting, else
        the group and the static member id, so a restarted pod or replica gets its predecessor's.
        A shadow's setting ends in ``-shadow`` (validated), so it never fences the primary's."""
        if not self.exactly_once:
            return None
        if self.transactional_id:
            return self.transactional_id
        if self.group_instance_id:
            return f"{group_id}-{self.group_instance_id}"[:249]
        return None

    def client_options(self) -> dict:
        """Connection options shared by kafka-python's consumer, producer and admin client."""
        options: dict = {"bootstrap_servers": self.bootstrap, "security_protocol": self.security_protocol,
                         "reconnect_backoff_max_ms": self.reconnect_backoff_max_ms}
        if self.client_id:
            options["client_id"] = self.client_id
        if self.sasl_mechanism == "OAUTHBEARER":
            from shared.kafka.oauth import FileTokenProvider

            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_oauth_token_provider"] = FileTokenProvider(self.sasl_oauth_token_file)
        elif self.sasl_mechanism:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password.get_secret_value() if self.sasl_password else None
        if self.ssl_cafile:
            options["ssl_cafile"] = self.ssl_cafile
        if self.ssl_certfile:
            options["ssl_certfile"] = self.ssl_certfile
            options["ssl_keyfile"] = self.ssl_keyfile
            if self.ssl_password:
                options["ssl_password"] = self.ssl_password.get_secret_value()
        return options


class ServiceSettings(BaseSettings):
    """Settings of one task service (env prefix ``SLM_``).

    Args:
        model_dir (`Path | None`): model folder; defaults to ``models/<task>`` in the repo.
        max_batch_size (`int`, defaults to `64`): most items in one REST batch request.
        batch_max_latency_ms (`int`, defaults to `5000`): queue bound of REST micro-batching: a
            request that waited longer than this for the model is refused with 503, not computed.
        batch_wait_ms (`float`, defaults to `0`): how long a REST batch waits for more requests once
            the model is free. 0 on CPU: requests that arrive while a batch runs form the next one.
        onnx_threads (`int`, defaults to `0`): ONNX Runtime intra-op threads (0: ORT decides).
        onnx_batch_size (`int`, defaults to `64`): most items in one ONNX Runtime run.
        onnx_batch_tokens (`int`, defaults to `512`): most padded tokens in one run (items x the
            longest item's tokens; 0: no bound). A REST or Kafka batch is sorted by token count and
            cut into runs within both bounds: many short texts per run, few long ones. On 2 cores,
            64-item batches of each test set: helpdesk 93 -> 203 items/s against fixed runs of 16,
            sentiment 352 -> 378, transactions 580 -> 576.
        review_threshold (`float | None`): overrides the threshold stored with the model.
        review_include_input (`bool`, defaults to `True`): a ``<task>.review`` record carries the request's
            ``text`` and ``fields`` (``input``), so a reviewer sees what was classified and ``slm feedback
            export`` can turn the verdict into a training row. False keeps input text out of the review
            topic (its readers then need the requests topic, or another store, to see it).
        cache_size (`int`, defaults to `10000`): answers kept for repeated inputs, least recently
            used out first; 0 turns the cache off.
        max_body_bytes (`int`, defaults to `1048576`): a REST request body larger than this is refused
            with 413 before it is read in full (as a reverse proxy's body-size limit would).
        body_read_timeout_s (`float`, defaults to `10`): a client that has not sent its whole body this
            long after its headers gets 408 and the connection is closed (slow clients).
        header_read_timeout_s (`float`, defaults to `10`): a connection that has not sent a complete
            request head this long after it opened (or after its previous response) is closed.
        log_inputs (`bool`, defaults to `False`): debugging only: let rejected requests' tracebacks,
            which quote the input text, into the log. Off, a client's 4xx is one WARNING line with the
            reason and no input text.
        api_keys_file (`Path | None`): turns API keys on: one lowercase SHA-256 hex digest of a key per
            line, ``#`` starts a comment (:mod:`shared.api_keys`). Re-read when it changes: keys
            rotate without a restart. Unset: no authentication (local use).
        open_paths (`list[str]`): paths answered without a key when keys are on: probes, metrics and
            the API's documentation.
        drift_window (`int`, defaults to `1000`): answers in the sliding window whose drift from the
            model's held-out answers the gauge ``slm.drift.psi`` reports (:mod:`shared.drift`).
    """

    model_config = SettingsConfigDict(env_prefix="SLM_", frozen=True, extra="ignore")

    model_dir: Path | None = None
    max_batch_size: int = Field(default=64, ge=1, le=1024)
    batch_max_latency_ms: int = Field(default=5000, ge=1)
    batch_wait_ms: float = Field(default=0, ge=0, le=1000)
    onnx_threads: int = Field(default=0, ge=0)
    onnx_batch_size: int = Field(default=64, ge=1, le=1024)
    onnx_batch_tokens: int = Field(default=512, ge=0)
    review_threshold: float | None = Field(default=None, ge=0, le=1)
    review_include_input: bool = True
    cache_size: int = Field(default=10_000, ge=0)
    max_body_bytes: int = Field(default=1_048_576, ge=1_024)
    body_read_timeout_s: float = Field(default=10.0, gt=0)
    header_read_timeout_s: float = Field(default=10.0, gt=0)
    log_inputs: bool = False
    api_keys_file: Path | None = None
    open_paths: tuple[str, ...] = ("/healthz", "/livez", "/readyz", "/metrics", "/", "/docs.json")
    drift_window: int = Field(default=1000, ge=1, le=1_000_000)


class ReplicaSettings(BaseSettings):
    """Ray Serve replicas of one task service (env prefix ``SLM_RAY_``; ``slm serve --replicas``).

    Args:
        num_replicas (`int`, defaults to `1`): fixed replica count, used when autoscaling is off.
        min_replicas / max_replicas (`int | None`): set both to autoscale between them.
        target_ongoing_requests (`float`, defaults to `2`): REST requests in flight per replica
            that Ray Serve's autoscaler aims for.
        target_lag_per_replica (`int`, defaults to `1000`): Kafka records behind per replica that
            the lag part of the autoscaling policy aims for; 0 turns the lag part off.
        upscale_delay_s / downscale_delay_s (`float`): how long a decision must hold before acting.
        cpus_per_replica (`float`, defaults to `1`): the replica's Ray CPU request; ONNX Runtime
            gets ``max(1, floor(cpus))`` intra-op threads, so N replicas fit N x cpus cores.
        gpus_per_replica (`float`, defaults to `0`): the replica's Ray GPU request.
        graceful_shutdown_s (`float`, defaults to `30`): time a stopping replica has to finish and
            commit its batch and leave the consumer group.
        address (`str | None`): an existing Ray cluster (``ray://`` or ``host:port``); unset starts
            a local one bound to 127.0.0.1.
        dashboard (`bool`, defaults to `False`): start Ray's dashboard with the local cluster.
    """

    model_config = SettingsConfigDict(env_prefix="SLM_RAY_", frozen=True, extra="ignore")

    num_replicas: int = Field(default=1, ge=1)
    min_replicas: int | None = Field(default=None, ge=0)
    max_replicas: int | None = Field(default=None, ge=1)
    target_ongoing_requests: float = Field(default=2.0, gt=0)
    target_lag_per_replica: int = Field(default=1000, ge=0)
    upscale_delay_s: float = Field(default=10.0, ge=0)
    downscale_delay_s: float = Field(default=60.0, ge=0)
    cpus_per_replica: float = Field(default=1.0, gt=0)
    gpus_per_replica: float = Field(default=0.0, ge=0)
    graceful_shutdown_s: float = Field(default=30.0, gt=0)
    address: str | None = None
    dashboard: bool = False

    @property
    def autoscaling(self) -> bool:
        return self.min_replicas is not None or self.max_replicas is not None

    @property
    def onnx_threads(self) -> int:
        """Intra-op threads per replica: its CPU request, so replicas never oversubscribe cores."""
        return max(1, int(self.cpus_per_replica))


#: Every settings class of the product: together they define every ``SLM_*`` name it reads (the developer
#: tools' own, such as ``SLM_KAFKA_PORT``, come in through the ``slm.settings`` entry point group).
SETTINGS_CLASSES: tuple[type[BaseSettings], ...] = (ServiceSettings, KafkaSettings, ReplicaSettings, WorkspaceSettings,
                                                    ImageSettings)
#: Names of the test suite's own variables (``SLM_TEST_KAFKA_BOOTSTRAP``...), no settings of the services.
TEST_PREFIX = "SLM_TEST_"


def _env_names(cls: type[BaseSettings]) -> dict[str, str]:
    """Field name -> environment variable name of a settings class."""
    prefix = cls.model_config.get("env_prefix", "")
    return {name: f"{prefix}{name}".upper() for name in cls.model_fields}


def known_setting_names(extra: Iterable[type[BaseSettings]] = ()) -> set[str]:
    """Every ``SLM_*`` name a settings class reads: the services' and ``extra`` (a plug-in's)."""
    return {env for cls in (*SETTINGS_CLASSES, *extra) for env in _env_names(cls).values()}


def unknown_settings(environ: Mapping[str, str] | None = None,
                     extra: Iterable[type[BaseSettings]] = ()) -> dict[str, str | None]:
    """``SLM_*`` names in ``environ`` (default: this process's) that no settings class (of the services or
    ``extra``) reads, each with the closest known name (``None`` when none is close)."""
    environ = os.environ if environ is None else environ
    known = sorted(known_setting_names(extra))
    return {name: next(iter(difflib.get_close_matches(name, known, n=1, cutoff=0.6)), None)
            for name in sorted(environ) if name.startswith("SLM_") and not name.startswith(TEST_PREFIX)
            and name not in known}


def warn_unknown_settings(environ: Mapping[str, str] | None = None,
                          extra: Iterable[type[BaseSettings]] = ()) -> dict[str, str | None]:
    """Log one warning per unknown ``SLM_*`` name in ``environ``, naming the closest known one."""
    unknown = unknown_settings(environ, extra)
    for name, closest in unknown.items():
        hint = f"; did you mean {closest}?" if closest else ""
        logger.warning("unknown setting %s is ignored%s", name, hint)
    return unknown


def invalid_setting(exc: ValidationError, extra: Iterable[type[BaseSettings]] = ()) -> str:
    """The first problem of a settings class's ``exc`` (the services' or ``extra``, a plug-in's), by its
    variable: ``SLM_KAFKA_PORT: Input should be ... (got 'ninety')``."""
    error = exc.errors()[0]
    names = next((_env_names(cls) for cls in (*SETTINGS_CLASSES, *extra) if cls.__name__ == exc.title), {})
    field_name = str(error["loc"][0]) if error["loc"] else ""
    return f"{names.get(field_name, field_name)}: {error['msg']} (got {error.get('input')!r})"


def _env_value(value) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return json.dumps([str(item) for item in value])  # pydantic-settings reads complex types as JSON
    return str(value)


def settings_env(*settings: BaseSettings) -> dict[str, str]:
    """The environment variables that give a child process ``settings``: each value that was set (by the
    environment or explicitly), by its ``SLM_*`` name; a value of ``None`` is left out (the default)."""
    env = {}
    for part in settings:
        names = _env_names(type(part))
        for name in sorted(part.model_fields_set):
            value = getattr(part, name)
            if value is not None:
                env[names[name]] = _env_value(value)
    return env


def child_environment(*settings: BaseSettings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment of a child process that reads ``settings``: ``base`` (default: this process's)
    without any of the settings' own names, then the settings rendered by :func:`settings_env`."""
    base = os.environ if base is None else base
    own = {env for part in settings for env in _env_names(type(part)).values()}
    return {**{k: v for k, v in base.items() if k not in own}, **settings_env(*settings)}


def _updated(settings: BaseSettings, **changes) -> BaseSettings:
    """A validated copy of ``settings`` with ``changes`` (every field given: the environment is not read again)."""
    cls = type(settings)
    return cls(**{**{name: getattr(settings, name) for name in cls.model_fields}, **changes})


class ServingSettings(BaseModel):
    """Everything one serving process of a task reads: the service's settings and Kafka's.

    Built once by the entry point (``slm serve``, the BentoML service process, the Ray application
    builder), validated there, and handed on: to Ray replicas bound to their deployment, to a child
    process as its environment (:meth:`environment`).

    Args:
        service (`ServiceSettings`): model folder, batching, threads, HTTP limits.
        kafka (`KafkaSettings`): the broker and the consumer loop; the loop is off without ``bootstrap``.
    """

    model_config = ConfigDict(frozen=True)

    service: ServiceSettings
    kafka: KafkaSettings

    @classmethod
    def from_env(cls, service: Mapping | None = None, kafka: Mapping | None = None) -> ServingSettings:
        """Read from this process's environment, with ``service`` and ``kafka`` values in place of it.

        Raises:
            pydantic.ValidationError: titled by the settings class whose value is wrong.
        """
        return cls(service=ServiceSettings(**(service or {})), kafka=KafkaSettings(**(kafka or {})))

    def model_dir(self, task: str) -> Path:
        """The folder to serve ``task`` from: the setting, else ``<models_dir>/<task>``."""
        return self.service.model_dir or default_model_dir(task)

    def replace(self, *, service: Mapping | None = None, kafka: Mapping | None = None) -> ServingSettings:
        """A validated copy with ``service`` and ``kafka`` values changed."""
        return ServingSettings(service=_updated(self.service, **(service or {})),
                               kafka=_updated(self.kafka, **(kafka or {})))

    def for_replica(self, replica_id: str) -> ServingSettings:
        """One Ray replica's settings: a static group member id (the pod name) gets the replica's id
        appended, since every replica of a pod runs a consumer of its own."""
        instance = self.kafka.group_instance_id
        if not instance:
            return self
        return self.replace(kafka={"group_instance_id": f"{instance}-{replica_id}"[:249]})

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of a child process serving with these settings (:func:`child_environment`)."""
        return child_environment(self.service, self.kafka, base=base)
