"""The real helm (built into .cache/bin by `make test`), with its cache, config and data in a
folder of the test session's, and a copy of charts/ whose file:// dependencies are built."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from shared.settings import REPO_ROOT

__all__ = ["CHARTS", "HELM", "charts_copy", "helm_env", "run_helm"]

CHARTS = REPO_ROOT / "charts"
HELM = REPO_ROOT / ".cache" / "bin" / "helm"


def helm_env(home: Path, kubeconfig: Path | None = None) -> dict[str, str]:
    """This process's environment without HELM_*, helm's folders under ``home``, and the kubeconfig
    (none: a path that does not exist, so no cluster is ever contacted)."""
    if not HELM.is_file():
        raise FileNotFoundError(f"{HELM} is missing: `make test` builds it (charts/charts.mk)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELM_")}
    env.update(HELM_CACHE_HOME=str(home / "cache"), HELM_CONFIG_HOME=str(home / "config"),
               HELM_DATA_HOME=str(home / "data"),
               KUBECONFIG=str(kubeconfig if kubeconfig is not None else home / "kubeconfig-unused"))
    return env


def run_helm(env: dict[str, str], *args: str | Path, cwd: Path | None = None,
             timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(HELM), *map(str, args)], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def charts_copy(dest: Path, env: dict[str, str]) -> Path:
    """A copy of charts/ at ``dest`` with the file:// dependencies built offline (no repository is contacted)."""
    shutil.copytree(CHARTS, dest, ignore=shutil.ignore_patterns("*.tgz"))
    for chart in ("slm-task", "slm-services"):
        result = run_helm(env, "dependency", "build", dest / chart)
        if result.returncode != 0:
            raise RuntimeError(f"helm dependency build {chart}: {result.stderr}")
    return dest
