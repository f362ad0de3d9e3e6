"""The node's processes and their command lines, in the order they start.

etcd, the API server, the controller-manager and the scheduler are the control plane; containerd,
the kubelet and kube-proxy make the node; CoreDNS runs beside them as a host process (the
cluster DNS at the node address), so the cluster needs no image but the pause image and the
project's own. Health ports are on 127.0.0.1; the API server and the kubelet serve on the node
address, which pods reach over the bridge.
"""

from __future__ import annotations

from typing import Final

from devtools.local_cluster.config import ClusterConfig
from devtools.local_cluster.daemons import Daemon
from devtools.local_cluster.node_files import kubeconfig_path
from devtools.local_cluster.pki import Pki

__all__ = ["START_ORDER", "node_daemons"]

START_ORDER: Final = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "containerd", "kubelet",
                      "kube-proxy", "coredns", "ray-operator")


def _etcd(cfg: ClusterConfig) -> list[str]:
    peer = f"http://127.0.0.1:{cfg.etcd_peer_port}"
    return ["/usr/bin/etcd", "--name", "slm", "--data-dir", str(cfg.state / "etcd"),
            "--listen-client-urls", cfg.etcd_url, "--advertise-client-urls", cfg.etcd_url,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"slm={peer}", "--initial-cluster-state", "new",
            "--log-level", "warn", "--quota-backend-bytes", str(2 * 1024**3)]


def _apiserver(cfg: ClusterConfig, pki: Pki) -> list[str]:
    return [str(cfg.binary("kube-apiserver")),
            "--etcd-servers", cfg.etcd_url,
            "--bind-address", cfg.node_ip, "--advertise-address", cfg.node_ip,
            "--secure-port", str(cfg.apiserver_port),
            "--service-cluster-ip-range", cfg.service_cidr,
            "--client-ca-file", str(pki.ca_cert),
            "--tls-cert-file", str(pki.cert("apiserver")), "--tls-private-key-file", str(pki.key("apiserver")),
            "--kubelet-client-certificate", str(pki.cert("apiserver-kubelet-client")),
            "--kubelet-client-key", str(pki.key("apiserver-kubelet-client")),
            "--kubelet-certificate-authority", str(pki.ca_cert),
            "--kubelet-preferred-address-types", "InternalIP",
            "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
            "--service-account-key-file", str(pki.service_account_pub),
            "--service-account-signing-key-file", str(pki.service_account_key),
            "--authorization-mode", "Node,RBAC",
            "--enable-admission-plugins", "NodeRestriction",
            "--allow-privileged=true",
            "--profiling=false",
            "--v", "1"]


def _controller_manager(cfg: ClusterConfig, pki: Pki) -> list[str]:
    kubeconfig = str(kubeconfig_path(cfg, "controller-manager"))
    return [str(cfg.binary("kube-controller-manager")),
            "--kubeconfig", kubeconfig, "--authentication-kubeconfig", kubeconfig,
            "--authorization-kubeconfig", kubeconfig,
            "--bind-address", "127.0.0.1",
            "--service-account-private-key-file", str(pki.service_account_key),
            "--root-ca-file", str(pki.ca_cert),
            "--cluster-signing-cert-file", str(pki.ca_cert), "--cluster-signing-key-file", str(pki.key("ca")),
            "--use-service-account-credentials=true",
            "--service-cluster-ip-range", cfg.service_cidr,
            "--leader-elect=false", "--profiling=false", "--v", "1"]


def _scheduler(cfg: ClusterConfig) -> list[str]:
    kubeconfig = str(kubeconfig_path(cfg, "scheduler"))
    return [str(cfg.binary("kube-scheduler")),
            "--kubeconfig", kubeconfig, "--authentication-kubeconfig", kubeconfig,
            "--authorization-kubeconfig", kubeconfig,
            "--bind-address", "127.0.0.1", "--leader-elect=false", "--profiling=false", "--v", "1"]


def _kubelet(cfg: ClusterConfig) -> list[str]:
    return [str(cfg.binary("kubelet")),
            "--config", str(cfg.config_dir / "kubelet.yaml"),
            "--kubeconfig", str(kubeconfig_path(cfg, "kubelet")),
            "--root-dir", str(cfg.kubelet_root),
            "--hostname-override", cfg.node_name, "--node-ip", cfg.node_ip,
            "--v", "1"]


def node_daemons(cfg: ClusterConfig, pki: Pki) -> dict[str, Daemon]:
    """Every process of the node, by name, in :data:`START_ORDER`."""
    argv = {
        "etcd": _etcd(cfg),
        "kube-apiserver": _apiserver(cfg, pki),
        "kube-controller-manager": _controller_manager(cfg, pki),
        "kube-scheduler": _scheduler(cfg),
        "containerd": ["/usr/bin/containerd", "--config", str(cfg.config_dir / "containerd.toml")],
        "kubelet": _kubelet(cfg),
        "kube-proxy": [str(cfg.binary("kube-proxy")), "--config", str(cfg.config_dir / "kube-proxy.yaml")],
        "coredns": [str(cfg.binary("coredns")), "-conf", str(cfg.config_dir / "Corefile")],
        # KubeRay's operator, for the chart's ray mode (its CRDs are applied before it starts). On
        # the host it cannot resolve cluster names, so it reaches Ray dashboards through the API
        # server's service proxy instead of <head>-svc.<namespace>.svc.
        "ray-operator": [str(cfg.binary("ray-operator")),
                         "--metrics-addr", "127.0.0.1:18092", "--health-probe-bind-address", "127.0.0.1:18093",
                         "--enable-leader-election=false", "--use-kubernetes-proxy"],
    }
    env = {"ray-operator": {"KUBECONFIG": str(cfg.kubeconfig)}}
    return {name: Daemon(name, argv[name], cfg.run_dir, cfg.log_dir, env.get(name, {})) for name in START_ORDER}
