"""The cluster's binaries, built once from the Go module proxy into ``.cache/bin``.

- Kubernetes: the proxy serves ``k8s.io/kubernetes`` as a module whose go.mod replaces the
  ``k8s.io/*`` libraries with ``./staging`` folders that the module zip leaves out. The build
  copies the module, points those replaces at the published ``k8s.io/* v0.<minor>.<patch>``
  modules and builds with ``-mod=mod``, with the version ldflags the release build sets (without
  them the server says v0.0.0 and the chart's ``kubeVersion`` refuses it).
- CoreDNS, the KubeRay operator, crictl: ``go install`` of the tagged module.
- The pause image's binary: ``build/pause/linux/pause.c`` from the same module, linked statically.
- skaffold (only for ``slm cluster skaffold``): its go.mod has replace directives, so ``go install``
  refuses it; all of them point at published modules, so it builds inside a copy of its module.

Each binary has a ``<name>.version`` stamp beside it; a binary whose stamp matches is kept.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Final

from devtools.errors import ClusterError
from devtools.local_cluster.config import (COREDNS_VERSION, CRICTL_VERSION, KUBERAY_VERSION, KUBERNETES_VERSION,
                                           SKAFFOLD_VERSION, ClusterConfig)

__all__ = ["KUBERNETES_COMMANDS", "build_all", "build_skaffold", "kubernetes_ldflags", "published_replaces"]

logger = logging.getLogger(__name__)

KUBERNETES_COMMANDS: Final = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet",
                              "kube-proxy", "kubectl")
_STAGING_REPLACE: Final = re.compile(r"^(\s*)(k8s\.io/[A-Za-z0-9._-]+) => \./staging/src/\2\s*$", re.MULTILINE)
_BUILD_TIMEOUT_S: Final = 3600


def published_replaces(go_mod: str, version: str) -> str:
    """go.mod text with every ``./staging`` replace pointed at the published module ``version``.

    >>> published_replaces("\\tk8s.io/api => ./staging/src/k8s.io/api\\n", "v1.33.13")
    '\\tk8s.io/api => k8s.io/api v0.33.13\\n'
    """
    library_version = "v0." + version.removeprefix("v").split(".", 1)[1]
    return _STAGING_REPLACE.sub(lambda m: f"{m.group(1)}{m.group(2)} => {m.group(2)} {library_version}", go_mod)


def kubernetes_ldflags(version: str) -> str:
    """The ldflags of a release build: the version every component and ``kubectl version`` report."""
    major, minor = version.removeprefix("v").split(".")[:2]
    values = {"gitVersion": version, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean",
              "buildDate": "1970-01-01T00:00:00Z"}
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {package}.{key}={value}" for key, value in values.items()]
    return " ".join(flags)


def _go_env(cfg: ClusterConfig) -> dict[str, str]:
    env = dict(os.environ)
    env.update(GOCACHE=str(cfg.cache_dir / "go-build"), GOMODCACHE=str(cfg.cache_dir / "go-mod"),
               GOFLAGS="-modcacherw -mod=mod", CGO_ENABLED="0", GOWORK="off")
    return env


def _run(args: list[str], *, cwd: Path | None, env: dict[str, str], what: str) -> str:
    if shutil.which(args[0]) is None:
        raise ClusterError(f"{args[0]} is not installed: it is needed to build {what}")
    started = time.monotonic()
    try:
        result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=_BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ClusterError(f"building {what} took over {_BUILD_TIMEOUT_S} s") from None
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ClusterError(f"building {what} failed: {last}")
    logger.info("built %s in %.0f s", what, time.monotonic() - started)
    return result.stdout


def _current(cfg: ClusterConfig, names: tuple[str, ...], version: str) -> bool:
    return all(cfg.binary(name).is_file() and _stamp(cfg, name).is_file()
               and _stamp(cfg, name).read_text().strip() == version for name in names)


def _stamp(cfg: ClusterConfig, name: str) -> Path:
    return cfg.bin_dir / f"{name}.version"


def _mark(cfg: ClusterConfig, names: tuple[str, ...], version: str) -> None:
    for name in names:
        _stamp(cfg, name).write_text(version + "\n")


def _module_copy(cfg: ClusterConfig, env: dict[str, str], module: str, version: str, folder: str) -> Path:
    """A writable copy of ``module@version`` under the build folder (the module cache is read-only),
    without vendor/ and go.work."""
    source = cfg.build_dir / folder
    if (source / ".slm-prepared").is_file():
        return source
    out = _run(["go", "mod", "download", "-json", f"{module}@{version}"], cwd=None, env=env,
               what=f"the {module}@{version} module download")
    module_dir = Path(re.search(r'"Dir":\s*"([^"]+)"', out).group(1))
    shutil.rmtree(source, ignore_errors=True)
    shutil.copytree(module_dir, source, symlinks=True, ignore=shutil.ignore_patterns("vendor", "go.work", "go.work.sum"))
    for path in (source, *source.rglob("*")):
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o200)
    return source


def _kubernetes_source(cfg: ClusterConfig, env: dict[str, str]) -> Path:
    """A copy of the Kubernetes module whose go.mod needs no staging folders."""
    source = _module_copy(cfg, env, "k8s.io/kubernetes", KUBERNETES_VERSION, f"kubernetes-{KUBERNETES_VERSION}")
    if not (source / ".slm-prepared").is_file():
        go_mod = source / "go.mod"
        go_mod.write_text(published_replaces(go_mod.read_text(), KUBERNETES_VERSION))
        (source / ".slm-prepared").write_text(KUBERNETES_VERSION + "\n")
    return source


def build_skaffold(cfg: ClusterConfig) -> Path:
    """skaffold, built once into ``.cache/bin`` (several minutes of CPU)."""
    cfg.bin_dir.mkdir(parents=True, exist_ok=True)
    if not _current(cfg, ("skaffold",), SKAFFOLD_VERSION):
        env = _go_env(cfg)
        source = _module_copy(cfg, env, "github.com/GoogleContainerTools/skaffold/v2", SKAFFOLD_VERSION,
                              f"skaffold-{SKAFFOLD_VERSION}")
        ldflags = f"-s -w -X github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/version.version={SKAFFOLD_VERSION}"
        _run(["go", "build", "-trimpath", "-ldflags", ldflags, "-o", str(cfg.binary("skaffold")), "./cmd/skaffold"],
             cwd=source, env=env, what=f"skaffold {SKAFFOLD_VERSION}")
        _mark(cfg, ("skaffold",), SKAFFOLD_VERSION)
    return cfg.binary("skaffold")


def _build_kubernetes(cfg: ClusterConfig, env: dict[str, str]) -> Path:
    source = _kubernetes_source(cfg, env)
    if not _current(cfg, KUBERNETES_COMMANDS, KUBERNETES_VERSION):
        _run(["go", "build", "-trimpath", "-ldflags", kubernetes_ldflags(KUBERNETES_VERSION), "-o", f"{cfg.bin_dir}/",
              *(f"./cmd/{name}" for name in KUBERNETES_COMMANDS)], cwd=source, env=env,
             what=f"Kubernetes {KUBERNETES_VERSION} ({', '.join(KUBERNETES_COMMANDS)})")
        _mark(cfg, KUBERNETES_COMMANDS, KUBERNETES_VERSION)
    return source


def _go_install(cfg: ClusterConfig, env: dict[str, str], name: str, package: str, version: str) -> None:
    if _current(cfg, (name,), version):
        return
    _run(["go", "install", "-trimpath", "-ldflags", "-s -w", f"{package}@{version}"], cwd=None,
         env={**env, "GOBIN": str(cfg.bin_dir), "GOFLAGS": "-modcacherw"}, what=f"{name} {version}")
    _mark(cfg, (name,), version)


def _build_pause(cfg: ClusterConfig, source: Path) -> None:
    if _current(cfg, ("pause",), KUBERNETES_VERSION):
        return
    _run(["gcc", "-Os", "-Wall", "-static", f"-DVERSION={KUBERNETES_VERSION}", "-o", str(cfg.binary("pause")),
          str(source / "build" / "pause" / "linux" / "pause.c")], cwd=None, env=dict(os.environ), what="pause")
    _mark(cfg, ("pause",), KUBERNETES_VERSION)


def build_all(cfg: ClusterConfig) -> None:
    """Build what is missing or of another version: Kubernetes, CoreDNS, the KubeRay operator, pause."""
    cfg.bin_dir.mkdir(parents=True, exist_ok=True)
    cfg.build_dir.mkdir(parents=True, exist_ok=True)
    env = _go_env(cfg)
    source = _build_kubernetes(cfg, env)
    _build_pause(cfg, source)
    _go_install(cfg, env, "coredns", "github.com/coredns/coredns", COREDNS_VERSION)
    _go_install(cfg, env, "ray-operator", "github.com/ray-project/kuberay/ray-operator", KUBERAY_VERSION)
    _go_install(cfg, env, "crictl", "sigs.k8s.io/cri-tools/cmd/crictl", CRICTL_VERSION)
