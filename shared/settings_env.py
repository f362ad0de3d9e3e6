"""Settings and the environment: each field's ``SLM_*`` name, and a child process's environment
rendered from settings objects (``slm serve`` starting ``bentoml serve``, ``slm up`` starting
``slm serve``), so the child reads back exactly the values the parent validated.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from pydantic import SecretStr
from pydantic_settings import BaseSettings

__all__ = ["child_environment", "env_names", "settings_env", "updated"]


def env_names(cls: type[BaseSettings]) -> dict[str, str]:
    """Field name -> environment variable name of a settings class."""
    prefix = cls.model_config.get("env_prefix", "")
    return {name: f"{prefix}{name}".upper() for name in cls.model_fields}


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
        names = env_names(type(part))
        for name in sorted(part.model_fields_set):
            value = getattr(part, name)
            if value is not None:
                env[names[name]] = _env_value(value)
    return env


def child_environment(*settings: BaseSettings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment of a child process that reads ``settings``: ``base`` (default: this process's)
    without any of the settings' own names, then the settings rendered by :func:`settings_env`."""
    base = os.environ if base is None else base
    own = {env for part in settings for env in env_names(type(part)).values()}
    return {**{k: v for k, v in base.items() if k not in own}, **settings_env(*settings)}


def updated(settings: BaseSettings, **changes) -> BaseSettings:
    """A validated copy of ``settings`` with ``changes`` (every field given: the environment is not read again)."""
    cls = type(settings)
    return cls(**{**{name: getattr(settings, name) for name in cls.model_fields}, **changes})
