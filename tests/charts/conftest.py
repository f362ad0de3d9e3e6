"""The chart tests' session fixtures: helm's own folders, and one copy of charts/ with its
file:// dependencies built, shared by every test in tests/charts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import helm as support_helm


@pytest.fixture(scope="session")
def helm_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """helm's cache, config and data in a temporary folder; no kube context."""
    try:
        return support_helm.helm_env(tmp_path_factory.mktemp("helm-home"))
    except FileNotFoundError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def charts_dir(tmp_path_factory: pytest.TempPathFactory, helm_env: dict[str, str]) -> Path:
    """A copy of charts/ with the file:// dependencies built offline (no repository is contacted)."""
    return support_helm.charts_copy(tmp_path_factory.mktemp("charts") / "charts", helm_env)
