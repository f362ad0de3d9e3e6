"""skaffold against the local cluster, with no Docker engine and nothing sent out.

skaffold's local builder asks a Docker daemon for the ID of every image it built, custom builds
included. podman serves the Docker API from the same storage that ``slm images build`` writes
(``podman system service``), so skaffold gets its answer, and the skaffold.yaml profile ``local``
builds each image with ``slm images build --tag $IMAGE --load``, which also imports it into the
node's containerd. skaffold's global configuration is a file of the cluster's with metrics
collection, update checks and surveys off: the first run would otherwise turn metrics on.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import httpx
import yaml

from devtools.errors import ClusterError
from devtools.local_cluster.build import build_skaffold
from devtools.local_cluster.config import ClusterConfig
from devtools.local_cluster.daemons import Daemon, wait_for
from devtools.local_cluster.network import unmount_under

__all__ = ["run_skaffold", "skaffold_global_config"]

#: The skaffold commands that take ``--config`` (the global configuration file).
SCHEMA_WRITTEN: Final = "skaffold/v4beta14"
SCHEMA_READ: Final = "skaffold/v4beta13"
READABLE_COPY: Final = ".skaffold-v4beta13.yaml"  # in .gitignore
_TAKE_CONFIG: Final = {"run", "dev", "debug", "build", "deploy", "delete", "diagnose", "apply", "test"}


def skaffold_global_config(path: Path) -> Path:
    """skaffold's global configuration: nothing leaves the machine, the cluster is local (never push)."""
    config = {"global": {"collect-metrics": False, "update-check": False, "local-cluster": True,
                         "survey": {"disable-prompt": True}}, "kubeContexts": []}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _docker_api(cfg: ClusterConfig) -> tuple[Daemon, dict[str, str], Path]:
    from devtools.images import ImageLayout
    from devtools.images.podman import Podman

    podman = Podman.found(ImageLayout(cfg.cache_dir))
    podman.prepare()
    socket = cfg.run_dir / "podman-docker-api.sock"
    daemon = Daemon("podman-docker-api", podman.command("system", "service", "--time=0", f"unix://{socket}"),
                    cfg.run_dir, cfg.log_dir, podman.environment({}))
    return daemon, podman.environment(), socket


def _answers(socket: Path) -> bool:
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(socket)), timeout=2) as client:
            return client.get("http://podman/_ping").status_code == 200
    except httpx.HTTPError:
        return False


def run_skaffold(cfg: ClusterConfig, args: Sequence[str], repo_root: Path) -> int:
    """Run ``skaffold <args>`` in ``repo_root`` against the local cluster; return its exit status."""
    if not cfg.kubeconfig.is_file():
        raise ClusterError("the local cluster is not up: `slm cluster up` starts it")
    skaffold = build_skaffold(cfg)
    daemon, podman_env, socket = _docker_api(cfg)
    daemon.start()
    try:
        wait_for(lambda: _answers(socket), what="podman's Docker API", timeout=60, daemon=daemon)
        config = skaffold_global_config(cfg.state / "skaffold" / "config")
        extra = ["--config", str(config)] if args and args[0] in _TAKE_CONFIG else []
        helm_home = cfg.cache_dir / "helm"
        env = {**podman_env,
               "DOCKER_HOST": f"unix://{socket}", "KUBECONFIG": str(cfg.kubeconfig),
               "PATH": os.pathsep.join([str(cfg.bin_dir), str(Path(sys.executable).parent), os.environ["PATH"]]),
               "HELM_CACHE_HOME": str(helm_home / "cache"), "HELM_CONFIG_HOME": str(helm_home / "config"),
               "HELM_DATA_HOME": str(helm_home / "data")}
        config_text = (repo_root / "skaffold.yaml").read_text()
        # skaffold.yaml is written against the v4beta14 schema; v2.16.1, the newest skaffold the
        # module proxy serves, reads up to v4beta13 and refuses anything it does not know.
        # The copy sits beside skaffold.yaml, since its paths are relative to it, and helm's
        # post-renderer (skaffold itself) reads it again by name.
        readable = repo_root / READABLE_COPY
        readable.write_text(config_text.replace(f"apiVersion: {SCHEMA_WRITTEN}", f"apiVersion: {SCHEMA_READ}", 1))
        try:
            return subprocess.run([str(skaffold), *args, *extra, "--filename", READABLE_COPY, "--update-check=false"],
                                  cwd=repo_root, env=env).returncode
        finally:
            readable.unlink(missing_ok=True)
    finally:
        daemon.stop()
        # The API service leaves podman's overlay folder mounted on itself when it is stopped.
        unmount_under(cfg.cache_dir / "containers" / "storage")
