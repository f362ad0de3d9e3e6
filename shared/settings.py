"""Settings: one frozen pydantic-settings class per concern, and the one place ``SLM_*`` names are defined.

Each entry point (a CLI command, a BentoML service process, a Ray application builder) reads the
settings it needs once, validated, and passes the objects down. A serving process's settings
travel together as :class:`ServingSettings`: a Ray replica gets them bound to its deployment, and
a child process (``slm serve`` started by ``slm up``, ``bentoml serve`` exec'd by ``slm serve``)
gets the environment :func:`shared.settings_env.child_environment` renders from them. An ``SLM_*``
name in the environment that no settings class defines is reported with the closest known name
(:func:`warn_unknown_settings`): a misspelt setting is otherwise silently ignored.

Here: the workspace's, the image's and the service's settings, a serving process's together, and
the registry of every class (:data:`SETTINGS_CLASSES`). Kafka's are :mod:`shared.kafka.settings`,
the Ray replicas' :mod:`shared.ray_settings`; how a class's fields map to ``SLM_*`` names and back
into a child's environment, :mod:`shared.settings_env`.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import socket
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.kafka.settings import KafkaSettings
from shared.ray_settings import ReplicaSettings
from shared.review.settings import ReviewSettings
from shared.settings_env import child_environment, env_names, updated

__all__ = ["ImageSettings", "REPO_ROOT", "SETTINGS_CLASSES", "ServiceSettings", "ServingSettings", "WorkspaceSettings",
           "default_model_dir", "invalid_setting", "known_setting_names", "local_instance_id", "service_import",
           "unknown_settings", "warn_unknown_settings"]

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]


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


def local_instance_id(host: str, port: int, hostname: str | None = None) -> str:
    """A static group member id for a server listening on ``host:port`` of this machine: unique among
    the servers running on it (two cannot listen on one address) and the same when the server is
    restarted on that address. Characters a member id may not hold become ``_``."""
    name = f"{hostname or socket.gethostname()}-{host}-{port}"
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:249]


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
        reference_check (`str`, defaults to `"warn"`): at start the model answers the requests of its
            folder's ``reference_answers.json`` and compares them with the stored answers
            (:mod:`shared.runtime.reference_answers`): ``warn`` logs a warning when they differ,
            ``refuse`` stops the service instead (a node that would not answer as the card says
            never serves), ``off`` skips the check.
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
    reference_check: Literal["warn", "refuse", "off"] = "warn"


#: Every settings class of the product: together they define every ``SLM_*`` name it reads (the developer
#: tools' own, such as ``SLM_KAFKA_PORT``, come in through the ``slm.settings`` entry point group).
SETTINGS_CLASSES: tuple[type[BaseSettings], ...] = (ServiceSettings, KafkaSettings, ReplicaSettings, WorkspaceSettings,
                                                    ImageSettings, ReviewSettings)
#: Names of the test suite's own variables (``SLM_TEST_KAFKA_BOOTSTRAP``...), no settings of the services.
TEST_PREFIX = "SLM_TEST_"


def known_setting_names(extra: Iterable[type[BaseSettings]] = ()) -> set[str]:
    """Every ``SLM_*`` name a settings class reads: the services' and ``extra`` (a plug-in's)."""
    return {env for cls in (*SETTINGS_CLASSES, *extra) for env in env_names(cls).values()}


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
    names = next((env_names(cls) for cls in (*SETTINGS_CLASSES, *extra) if cls.__name__ == exc.title), {})
    field_name = str(error["loc"][0]) if error["loc"] else ""
    return f"{names.get(field_name, field_name)}: {error['msg']} (got {error.get('input')!r})"


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
        return ServingSettings(service=updated(self.service, **(service or {})),
                               kafka=updated(self.kafka, **(kafka or {})))

    def for_local_server(self, host: str, port: int) -> ServingSettings:
        """The settings of a server started on this host (``slm serve``): with Kafka on and no
        ``group_instance_id`` set, :func:`local_instance_id` of its address, so that a restart after a
        crash is a static member that takes its partitions back at once. The chart's pod name, or any
        id set, is kept."""
        if not self.kafka.bootstrap or self.kafka.group_instance_id:
            return self
        return self.replace(kafka={"group_instance_id": local_instance_id(host, port)})

    def for_replica(self, replica_id: str) -> ServingSettings:
        """One Ray replica's settings: a static group member id (the pod name) gets the replica's id
        appended, since every replica of a pod runs a consumer of its own."""
        instance = self.kafka.group_instance_id
        if not instance:
            return self
        return self.replace(kafka={"group_instance_id": f"{instance}-{replica_id}"[:249]})

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of a child process serving with these settings
        (:func:`shared.settings_env.child_environment`)."""
        return child_environment(self.service, self.kafka, base=base)
