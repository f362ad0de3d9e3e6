"""Where the local cluster lives: versions, addresses, folders.

One node whose address is the gateway of a bridge that ``slm cluster up`` creates, so every
byte the cluster sends stays on that bridge, in the pods' network namespaces or on loopback.
The control plane's own ports (etcd, the controller-manager's and scheduler's health ports) are
on 127.0.0.1; the API server and the kubelet serve on the node address, which pods reach.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from shared.settings import WorkspaceSettings

__all__ = ["COREDNS_VERSION", "CRICTL_VERSION", "KUBERAY_VERSION", "KUBERNETES_VERSION", "SKAFFOLD_VERSION", "ClusterConfig"]

#: Upstream Kubernetes, built from the Go module proxy (the chart's kubeVersion accepts 1.33).
KUBERNETES_VERSION: Final = "v1.33.13"
COREDNS_VERSION: Final = "v1.12.4"
#: The newest ray-operator the module proxy serves; the chart's RayService is checked against its CRD.
KUBERAY_VERSION: Final = "v1.5.0"
#: The CRI client that stops pods at `down` (so CNI releases their network).
CRICTL_VERSION: Final = "v1.34.0"
#: skaffold for the dev loop against the local cluster (``slm cluster skaffold``).
SKAFFOLD_VERSION: Final = "v2.16.1"


def _cache_dir() -> Path:
    return WorkspaceSettings().cache_dir


@dataclass(frozen=True)
class ClusterConfig:
    """The local cluster's addresses and folders.

    Attributes:
        cache_dir: the checkout's cache; binaries go to ``<cache_dir>/bin``, build trees and state
            to ``<cache_dir>/cluster``.
        node_name: the node's name (and the kubelet's user ``system:node:<node_name>``).
        bridge: the Linux bridge the pods attach to (15 characters at most).
        pod_cidr: the pods' network; its first address is the bridge's and the node's.
        service_cidr: cluster IPs of Services; the first is the ``kubernetes`` Service's, the
            tenth the cluster DNS's (a host process, like the rest of the node).
    """

    cache_dir: Path = field(default_factory=_cache_dir)
    node_name: str = "slm-node"
    bridge: str = "slmk8s0"
    pod_cidr: str = "10.244.0.0/24"
    service_cidr: str = "10.96.0.0/16"
    apiserver_port: int = 6443
    etcd_port: int = 12379
    etcd_peer_port: int = 12380

    def __post_init__(self) -> None:
        object.__setattr__(self, "cache_dir", Path(self.cache_dir).expanduser().absolute())
        if len(self.bridge) > 15:
            raise ValueError(f"bridge name {self.bridge!r} is longer than Linux's 15 characters")

    # -- addresses -----------------------------------------------------------------------------

    @property
    def node_ip(self) -> str:
        return str(next(ipaddress.ip_network(self.pod_cidr).hosts()))

    @property
    def pod_prefix_length(self) -> int:
        return ipaddress.ip_network(self.pod_cidr).prefixlen

    @property
    def kubernetes_service_ip(self) -> str:
        return str(ipaddress.ip_network(self.service_cidr).network_address + 1)

    @property
    def dns_ip(self) -> str:
        """The cluster DNS's address: the node's, where CoreDNS listens as a host process."""
        return self.node_ip

    @property
    def server(self) -> str:
        return f"https://{self.node_ip}:{self.apiserver_port}"

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.etcd_port}"

    # -- folders -------------------------------------------------------------------------------

    @property
    def bin_dir(self) -> Path:
        return self.cache_dir / "bin"

    @property
    def root(self) -> Path:
        """Everything the cluster builds and keeps; ``state`` is what ``down`` removes."""
        return self.cache_dir / "cluster"

    @property
    def build_dir(self) -> Path:
        return self.root / "build"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def pki_dir(self) -> Path:
        return self.state / "pki"

    @property
    def config_dir(self) -> Path:
        return self.state / "config"

    @property
    def log_dir(self) -> Path:
        return self.state / "logs"

    @property
    def run_dir(self) -> Path:
        """Pid files and sockets."""
        return self.state / "run"

    @property
    def kubeconfig(self) -> Path:
        """The admin's kubeconfig, which ``slm cluster status`` prints."""
        return self.state / "kubeconfig"

    @property
    def containerd_socket(self) -> Path:
        return self.run_dir / "containerd.sock"

    @property
    def kubelet_root(self) -> Path:
        return self.state / "kubelet"

    def binary(self, name: str) -> Path:
        return self.bin_dir / name
