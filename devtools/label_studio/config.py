"""Where the local Label Studio runs and who may use it: :class:`LocalLabelStudioSettings` and the folders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import WorkspaceSettings

__all__ = ["LOCALHOST", "LOCK_FILE", "LabelStudioConfig", "LocalLabelStudioSettings", "VERSION"]

#: The only interface it listens on.
LOCALHOST: Final = "127.0.0.1"
#: Its pinned set, installed with --no-deps.
LOCK_FILE: Final = Path(__file__).resolve().with_name("requirements.lock")
VERSION: Final = "1.23.2"


class LocalLabelStudioSettings(BaseSettings):
    """The local Label Studio that ``slm review up`` runs (env prefix ``SLM_LABEL_STUDIO_``).

    Args:
        port (`int`, defaults to `8089`): its port on 127.0.0.1.
        home (`Path | None`): its data, credentials and log; defaults to ``<cache_dir>/label-studio``.
            Its environment (``<cache_dir>/label-studio/venv``) is one for all homes.
    """

    model_config = SettingsConfigDict(env_prefix="SLM_LABEL_STUDIO_", frozen=True, extra="ignore")

    port: int = 8089
    home: Path | None = None


@dataclass(frozen=True)
class LabelStudioConfig:
    port: int
    home: Path
    venv: Path

    @classmethod
    def from_env(cls) -> LabelStudioConfig:
        settings = LocalLabelStudioSettings()
        cache = WorkspaceSettings().cache_dir / "label-studio"
        return cls(settings.port, settings.home or cache, cache / "venv")

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def credentials_file(self) -> Path:
        return self.home / "credentials.json"

    @property
    def pid_file(self) -> Path:
        return self.home / "label-studio.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "label-studio.log"

    @property
    def lock_file(self) -> Path:
        return self.home / ".lock"
