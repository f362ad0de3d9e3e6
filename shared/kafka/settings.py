"""Kafka settings of a task service (env prefix ``SLM_KAFKA_``): the broker, the client security, the
consumer loop, the delivery guarantee and the shadow role; and the options each kafka-python client
is built with from them (:meth:`KafkaSettings.client_options`, :meth:`KafkaSettings.group_options`).

One of the product's settings classes (:data:`shared.settings.SETTINGS_CLASSES`), which together own
every ``SLM_*`` name.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["KafkaSettings", "SHADOW_SUFFIX"]

# The end of a shadow's consumer group and of an explicit transactional id: neither may be the primary's.
SHADOW_SUFFIX = "-shadow"


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
    compression_type: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(default="none", description=(
        "codec of the batches the loop produces (results, review copies, DLQ records); every Kafka client "
        "reads all five"))
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
