"""SASL OAUTHBEARER with the token in a file: kafka-python asks a token provider for the token
on every new connection, and this one reads the file then, so whatever renews the file (a
sidecar, a projected service-account token, a CronJob) renews the clients' credentials."""

from __future__ import annotations

from pathlib import Path

from kafka.net.sasl.oauth import AbstractTokenProvider

from shared.errors import ConfigError

__all__ = ["FileTokenProvider"]


class FileTokenProvider(AbstractTokenProvider):
    """The bearer token in *path* (surrounding whitespace removed)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)

    def token(self) -> str:
        try:
            token = self.path.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"SLM_KAFKA_SASL_OAUTH_TOKEN_FILE={self.path}: cannot read it: {exc}") from None
        if not token:
            raise ConfigError(f"SLM_KAFKA_SASL_OAUTH_TOKEN_FILE={self.path} is empty")
        return token
