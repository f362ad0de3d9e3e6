"""Settings of the review bridge (env prefix ``SLM_REVIEW_``).

One of the product's settings classes (:data:`shared.settings.SETTINGS_CLASSES`). The services' own
``SLM_REVIEW_THRESHOLD`` and ``SLM_REVIEW_INCLUDE_INPUT`` belong to :class:`shared.settings.ServiceSettings`.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ReviewSettings"]


class ReviewSettings(BaseSettings):
    """Where the bridge finds Label Studio and how Label Studio calls it back.

    Args:
        label_studio_url (`str | None`): Label Studio's base URL (``slm review status --json`` gives the local one).
        label_studio_token (`SecretStr | None`): its API token: a personal access token or a legacy token.
        webhook_url (`str | None`): the URL at which Label Studio reaches this bridge's ``/webhook``; defaults to
            ``http://127.0.0.1:<port>/webhook`` (a Label Studio on the same host).
        webhook_secret (`SecretStr | None`): the value of the ``X-Slm-Webhook-Secret`` header Label Studio is told
            to send and the bridge requires; unset, the bridge draws one at each start and sets it on the webhook.
        project (`str | None`): the project's title; defaults to ``slm-services <task>``.
        group_id (`str | None`): the consumer group on ``<task>.review``; defaults to ``slm-<task>-review-bridge``
            (never the service's ``SLM_KAFKA_GROUP_ID``: the bridge must not take the service's partitions).
        sweep_interval_s (`float`): how often annotations a webhook may have missed are looked for.
        retry_max_s (`float`): the longest wait between retries while Label Studio or Kafka is down.
        batch (`int`): review records written to Label Studio per call.
    """

    model_config = SettingsConfigDict(env_prefix="SLM_REVIEW_", frozen=True, extra="ignore")

    label_studio_url: str | None = None
    label_studio_token: SecretStr | None = None
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    project: str | None = None
    group_id: str | None = None
    sweep_interval_s: float = Field(default=30.0, gt=0)
    retry_max_s: float = Field(default=30.0, gt=0)
    batch: int = Field(default=100, ge=1, le=1000)
