"""``up``, ``down`` and ``status`` of the local one-node cluster.

``up`` is idempotent: what runs is kept, what is missing is started, each step waits for the
component's own health endpoint. ``down`` stops the pods through the container runtime (so CNI
releases their addresses and namespaces), then every process by its pid file, unmounts what the
kubelet and containerd mounted under the state folder, removes the bridge and the chains, restores
the kernel settings and deletes the state. The build cache (``.cache/bin``, ``.cache/cluster/build``)
stays, so the next ``up`` takes about a minute.
"""

from __future__ import annotations

import logging
import os
import shutil
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any, Final

import httpx
import psutil

from devtools.errors import ClusterError
from devtools.images import load_into_containerd
from devtools.local_cluster.build import build_all
from devtools.local_cluster.components import START_ORDER, node_daemons
from devtools.local_cluster.config import KUBERAY_VERSION, ClusterConfig
from devtools.local_cluster.daemons import Daemon, wait_for
from devtools.local_cluster.kubectl import kubectl
from devtools.local_cluster.network import network_down, network_up, unmount_under
from devtools.local_cluster.node_files import PAUSE_IMAGE, write_node_files
from devtools.local_cluster.pause_image import write_pause_archive
from devtools.local_cluster.pki import Pki, ensure_pki
from shared.settings import REPO_ROOT

__all__ = ["down", "status", "up"]

logger = logging.getLogger(__name__)

_HOST_TOOLS: Final = {"etcd": "etcd-server", "containerd": "containerd", "runc": "runc", "ctr": "containerd",
                      "iptables": "iptables", "conntrack": "conntrack", "ip": "iproute2"}
_STEP_TIMEOUT_S: Final = 120.0

#: What CoreDNS's user may read (the role kubeadm gives it).
_COREDNS_RBAC: Final = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:coredns"}
"""


def _check_host() -> None:
    if os.geteuid() != 0:
        raise ClusterError("the local cluster needs root (it creates a bridge and runs the kubelet)")
    missing = sorted({package for tool, package in _HOST_TOOLS.items() if shutil.which(tool) is None})
    if missing:
        raise ClusterError(f"missing Debian packages: {' '.join(missing)} (`make cluster-up` installs them)")


def _get(url: str, pki: Pki | None = None) -> httpx.Response | None:
    """GET a health endpoint; None while nothing answers."""
    try:
        if pki is None:  # the component's self-signed serving certificate: only its health is read
            return httpx.get(url, timeout=2, verify=False)
        context = ssl.create_default_context(cafile=str(pki.ca_cert))
        context.load_cert_chain(str(pki.cert("admin")), str(pki.key("admin")))
        return httpx.get(url, timeout=2, verify=context)
    except httpx.HTTPError:
        return None


def _healthy(url: str, pki: Pki | None = None):
    def check() -> bool:
        response = _get(url, pki)
        return response is not None and response.status_code == 200
    return check


def _containerd_answers(cfg: ClusterConfig) -> bool:
    if not cfg.containerd_socket.exists():
        return False
    return subprocess.run(["ctr", "--address", str(cfg.containerd_socket), "version"], capture_output=True,
                          timeout=10).returncode == 0


def _node_ready(cfg: ClusterConfig) -> bool:
    result = kubectl(cfg, "get", "node", cfg.node_name, "-o",
                     "jsonpath={.status.conditions[?(@.type=='Ready')].status}", check=False)
    return result.returncode == 0 and result.stdout.strip() == "True"


def _readiness(cfg: ClusterConfig, pki: Pki) -> dict[str, Any]:
    """Each component's wait: a check that is true once it serves."""
    return {
        "etcd": _healthy(f"{cfg.etcd_url}/health"),
        "kube-apiserver": _healthy(f"{cfg.server}/readyz", pki),
        "kube-controller-manager": _healthy("https://127.0.0.1:10257/healthz"),
        "kube-scheduler": _healthy("https://127.0.0.1:10259/healthz"),
        "containerd": lambda: _containerd_answers(cfg),
        "kubelet": lambda: _node_ready(cfg),
        "kube-proxy": _healthy("http://127.0.0.1:10256/healthz"),
        "coredns": _healthy("http://127.0.0.1:18091/ready"),
        "ray-operator": _healthy("http://127.0.0.1:18093/readyz"),
    }


def _kuberay_crds(cfg: ClusterConfig) -> list[Path]:
    """The KubeRay CRDs the chart is written against (v1.7.0, in the team's schema folder), else the
    operator module's own."""
    handout = REPO_ROOT.parent / "shared" / "k8s-schemas" / "crds" / "kuberay"
    if handout.is_dir():
        return sorted(handout.glob("ray.io_*.yaml"))
    module = cfg.cache_dir / "go-mod" / f"github.com/ray-project/kuberay/ray-operator@{KUBERAY_VERSION}/config/crd/bases"
    return sorted(module.glob("ray.io_*.yaml"))


#: containerd 1.6 puts its shims' sockets here whatever its configured state folder.
_SHIM_SOCKETS: Final = Path("/run/containerd")


def _before_start(cfg: ClusterConfig, name: str) -> None:
    if name == "containerd" and not _SHIM_SOCKETS.exists():
        (cfg.run_dir / "created-run-containerd").touch()  # so `down` removes it, and only then
    if name == "ray-operator":
        for crd in _kuberay_crds(cfg):  # server-side: the CRDs are larger than client-side apply's annotation
            kubectl(cfg, "apply", "--server-side", "--force-conflicts", "-f", str(crd))


def _after_start(cfg: ClusterConfig, name: str) -> None:
    """What a component needs from the cluster before the next one starts."""
    if name == "kube-apiserver":
        kubectl(cfg, "apply", "-f", "-", stdin=_COREDNS_RBAC)
    elif name == "containerd":
        archive = write_pause_archive(cfg.binary("pause"), PAUSE_IMAGE, cfg.state / "images" / "pause.tar")
        load_into_containerd(archive, cfg.containerd_socket)


def up(cfg: ClusterConfig) -> dict[str, Any]:
    """Build what is missing, then start every component that is not running; return :func:`status`."""
    _check_host()
    started = time.monotonic()
    build_all(cfg)
    pki = ensure_pki(cfg.pki_dir, node_name=cfg.node_name, node_ip=cfg.node_ip, service_ip=cfg.kubernetes_service_ip)
    write_node_files(cfg, pki)
    network_up(cfg)
    daemons = node_daemons(cfg, pki)
    readiness = _readiness(cfg, pki)
    for name in START_ORDER:
        daemon = daemons[name]
        fresh = daemon.process() is None
        if fresh:
            _before_start(cfg, name)
        daemon.start()
        wait_for(readiness[name], what=f"{name} ready", timeout=_STEP_TIMEOUT_S, daemon=daemon)
        if fresh:
            _after_start(cfg, name)
        logger.info("%s ready (%.0f s since up)", name, time.monotonic() - started)
    state = status(cfg)
    state["up_seconds"] = round(time.monotonic() - started, 1)
    return state


def _remove_pods(cfg: ClusterConfig, daemons: dict[str, Daemon]) -> None:
    """Stop and remove every pod sandbox through CRI, so CNI tears down its network; then kill what is left."""
    crictl = cfg.binary("crictl")
    if daemons["containerd"].process() is None:
        return
    endpoint = f"unix://{cfg.containerd_socket}"
    if crictl.is_file():
        for args in (("stopp",), ("rmp", "--force")):
            ids = subprocess.run([str(crictl), "--runtime-endpoint", endpoint, "pods", "-q"], capture_output=True,
                                 text=True, timeout=60).stdout.split()
            if ids:
                subprocess.run([str(crictl), "--runtime-endpoint", endpoint, *args, *ids], capture_output=True,
                               timeout=180)


def _kill_shims(cfg: ClusterConfig) -> None:
    """containerd's shims outlive containerd by design; those of this socket go with the cluster."""
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if cmdline and "containerd-shim" in cmdline[0] and str(cfg.containerd_socket) in cmdline:
            for child in proc.children(recursive=True):
                child.kill()
            proc.kill()


def down(cfg: ClusterConfig) -> list[str]:
    """Stop the cluster and leave the host as it was; return what could not be removed (empty when clean)."""
    pki = Pki(cfg.pki_dir)
    daemons = node_daemons(cfg, pki)
    daemons["kubelet"].stop()  # first, so it restarts nothing while the pods go
    _remove_pods(cfg, daemons)
    for name in reversed(START_ORDER):
        daemons[name].stop()
    _kill_shims(cfg)
    if (cfg.run_dir / "created-run-containerd").is_file():
        shutil.rmtree(_SHIM_SOCKETS, ignore_errors=True)
    leftovers = unmount_under(cfg.state)
    network_down(cfg, cfg.binary("kube-proxy"))
    if not leftovers:
        shutil.rmtree(cfg.state, ignore_errors=True)
    return leftovers


def status(cfg: ClusterConfig) -> dict[str, Any]:
    """Which components run (pid or None), the kubeconfig, the server and the node's readiness."""
    daemons = node_daemons(cfg, Pki(cfg.pki_dir))
    pids = {name: (proc.pid if (proc := daemons[name].process()) else None) for name in START_ORDER}
    running = pids["kube-apiserver"] is not None and cfg.kubeconfig.is_file()
    return {"kubeconfig": cfg.kubeconfig, "server": cfg.server, "processes": pids,
            "node_ready": running and _node_ready(cfg), "logs": cfg.log_dir}
