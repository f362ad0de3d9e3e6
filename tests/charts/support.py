"""Rendering the charts with the real helm, and picking objects out of what it renders.

helm is the binary `make setup` builds from the Go module proxy (charts/charts.mk); the session
fixtures the chart tests take (``helm_env``, ``charts_dir``) are in tests/charts/conftest.py, and the
schema validation of what is rendered in tests/charts/validation.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.settings import REPO_ROOT
from tests.support import helm as support_helm

# This checkout's own path: a rendered manifest must not name the machine it was rendered on.
MACHINE_PATH = str(REPO_ROOT)

CHARTS = support_helm.CHARTS
K8S_SCHEMAS = REPO_ROOT.parent / "shared" / "k8s-schemas"
TASKS = ("sentiment", "transactions", "entities", "helpdesk")
RELEASE = "slm"
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml parses the 1 MB CRDs in 0.2 s

needs_k8s_schemas = pytest.mark.skipif(
    not K8S_SCHEMAS.is_dir(), reason=f"{K8S_SCHEMAS} is absent: it holds the CRD and skaffold schemas"
)

run_helm = support_helm.run_helm


def template(
    helm_env: dict[str, str], charts_dir: Path, *args: str, chart: str = "slm-services"
) -> subprocess.CompletedProcess:
    return run_helm(helm_env, "template", RELEASE, charts_dir / chart, "--namespace", "slm", *args)


def render(helm_env: dict[str, str], charts_dir: Path, *args: str, chart: str = "slm-services") -> list[dict]:
    result = template(helm_env, charts_dir, *args, chart=chart)
    assert result.returncode == 0, result.stderr
    assert MACHINE_PATH not in result.stdout, "a rendered manifest names a machine path"
    return [doc for doc in yaml.load_all(result.stdout, Loader=YAML_LOADER) if doc]


def set_args(values: dict[str, Any]) -> list[str]:
    """--set-json flags, one per top-level key."""
    return [arg for key, value in values.items() for arg in ("--set-json", f"{key}={json.dumps(value)}")]


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [doc for doc in docs if doc["kind"] == kind]


def named(docs: list[dict], kind: str, name: str) -> dict:
    matches = [doc for doc in by_kind(docs, kind) if doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, got {[d['metadata']['name'] for d in by_kind(docs, kind)]}"
    return matches[0]
