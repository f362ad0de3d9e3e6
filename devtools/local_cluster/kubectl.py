"""kubectl, built with the cluster, run with the admin's kubeconfig."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from devtools.errors import ClusterError
from devtools.local_cluster.config import ClusterConfig

__all__ = ["kubectl", "kubectl_json"]


def kubectl(cfg: ClusterConfig, *args: str, stdin: str | None = None, timeout: float = 120,
            check: bool = True) -> subprocess.CompletedProcess:
    """Run ``kubectl <args>`` against the local cluster; a failure is a :class:`ClusterError` with kubectl's words."""
    result = subprocess.run([str(cfg.binary("kubectl")), "--kubeconfig", str(cfg.kubeconfig), *args],
                            input=stdin, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise ClusterError(f"kubectl {' '.join(args[:3])}: {result.stderr.strip() or result.stdout.strip()}")
    return result


def kubectl_json(cfg: ClusterConfig, *args: str) -> Any:
    return json.loads(kubectl(cfg, *args, "-o", "json").stdout)
