"""Settings, one frozen pydantic-settings class per concern, read from environment variables once."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["KafkaSettings", "ReplicaSettings", "ServiceSettings", "REPO_ROOT", "default_model_dir", "service_import"]

REPO_ROOT = Path(__file__).resolve().parents[1]


def default_model_dir(task: str) -> Path:
    """Where ``slm train <task>`` writes and ``slm serve <task>`` reads by default:
    ``models/<task>`` in the repository, or under ``SLM_MODELS_DIR`` when that is set."""
    return Path(os.environ.get("SLM_MODELS_DIR") or REPO_ROOT / "models") / task


def service_import(task: str) -> str:
    """The BentoML service of ``task`` as ``module:Class`` (``services.helpdesk.service:Helpdesk``)."""
    return f"services.{task}.service:{task.title()}"


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
    health_interval_s: float = Field(default=2.0, gt=0, description="how often an idle loop checks the broker")
    unready_after_s: float = Field(default=10.0, ge=0, description=(
        "/readyz answers 503 when the loop has not reached the broker for this long (0: readiness ignores "
        "the broker, for REST-first deployments)"))

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

    def client_options(self) -> dict:
        """Connection options shared by kafka-python's consumer, producer and admin client."""
        options: dict = {"bootstrap_servers": self.bootstrap, "security_protocol": self.security_protocol,
                         "reconnect_backoff_max_ms": self.reconnect_backoff_max_ms}
        if self.client_id:
            options["client_id"] = self.client_id
        if self.sasl_mechanism:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password.get_secret_value() if self.sasl_password else None
        if self.ssl_cafile:
            options["ssl_cafile"] = self.ssl_cafile
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
    cache_size: int = Field(default=10_000, ge=0)
    max_body_bytes: int = Field(default=1_048_576, ge=1_024)
    body_read_timeout_s: float = Field(default=10.0, gt=0)
    header_read_timeout_s: float = Field(default=10.0, gt=0)
    log_inputs: bool = False


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
