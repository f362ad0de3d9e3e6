"""The configuration files of the node's processes, written into the cluster's state folder.

Choices that keep every byte on this machine's bridge and loopback:
- CoreDNS answers ``cluster.local`` from the API server and nothing else (no ``forward``): a
  pod that asks for an outside name gets NXDOMAIN instead of a query leaving the machine.
- The kubelet gets an empty ``resolvConf``, so no pod inherits the host's resolver.
- The CNI bridge masquerades nothing: pods talk to the node address and to each other only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

import yaml

from devtools.local_cluster.config import ClusterConfig
from devtools.local_cluster.pki import Pki

__all__ = ["PAUSE_IMAGE", "write_node_files", "kubeconfig_path", "write_kubeconfig"]

#: The sandbox image containerd starts for every pod; built locally from pause.c (images.py).
PAUSE_IMAGE: Final = "registry.k8s.io/pause:3.10"
CNI_BIN_DIR: Final = "/usr/lib/cni"  # Debian's containernetworking-plugins


def kubeconfig_path(cfg: ClusterConfig, user: str) -> Path:
    return cfg.kubeconfig if user == "admin" else cfg.config_dir / f"{user}.kubeconfig"


def write_kubeconfig(cfg: ClusterConfig, pki: Pki, user: str) -> Path:
    """A kubeconfig for ``user``'s client certificate, with the cluster CA, naming the node address."""
    doc = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "slm-local", "cluster": {"server": cfg.server,
                                                        "certificate-authority": str(pki.ca_cert)}}],
        "users": [{"name": user, "user": {"client-certificate": str(pki.cert(user)),
                                          "client-key": str(pki.key(user))}}],
        "contexts": [{"name": "slm-local", "context": {"cluster": "slm-local", "user": user}}],
        "current-context": "slm-local",
    }
    path = kubeconfig_path(cfg, user)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    path.chmod(0o600)
    return path


def _containerd_config(cfg: ClusterConfig) -> str:
    return f"""version = 2
root = "{cfg.state / 'containerd' / 'root'}"
state = "{cfg.state / 'containerd' / 'state'}"

[grpc]
  address = "{cfg.containerd_socket}"

[ttrpc]
  address = "{cfg.run_dir / 'containerd-ttrpc.sock'}"

[debug]
  level = "warn"

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  # The kubelet asks for -998 for the pause container; where this process may not go below its
  # own score (here: a VM whose init keeps it), runc fails to start any pod. Clamp instead.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # runc's state in the cluster's folder, not in /run/containerd, so `down` removes it.
        Root = "{cfg.run_dir / 'runc'}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{cfg.config_dir / 'cni'}"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = ""
"""


def _cni_config(cfg: ClusterConfig) -> dict:
    return {
        "cniVersion": "1.0.0",
        "name": "slm-pods",
        "plugins": [
            {"type": "bridge", "bridge": cfg.bridge, "isGateway": True, "ipMasq": False, "hairpinMode": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": cfg.pod_cidr, "gateway": cfg.node_ip}]],
                      "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(cfg.state / "cni-ipam")}},
        ],
    }


def _kubelet_config(cfg: ClusterConfig, pki: Pki) -> dict:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "address": cfg.node_ip, "port": 10250, "readOnlyPort": 0, "healthzBindAddress": "127.0.0.1",
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(pki.ca_cert)}},
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(pki.cert("kubelet-server")), "tlsPrivateKeyFile": str(pki.key("kubelet-server")),
        "clusterDomain": "cluster.local", "clusterDNS": [cfg.dns_ip], "resolvConf": "",
        "cgroupDriver": "cgroupfs", "failSwapOn": False, "failCgroupV1": False,
        "containerRuntimeEndpoint": f"unix://{cfg.containerd_socket}",
        "registerNode": True, "serializeImagePulls": False,
        # The images are imported, never pulled; a node full of disk must not garbage-collect them.
        "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "200Mi", "nodefs.available": "2%", "imagefs.available": "2%"},
        "maxPods": 60, "shutdownGracePeriod": "0s",
    }


def _kube_proxy_config(cfg: ClusterConfig) -> dict:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
        "mode": "iptables", "clusterCIDR": cfg.pod_cidr, "hostnameOverride": cfg.node_name,
        "bindAddress": cfg.node_ip, "healthzBindAddress": "127.0.0.1:10256", "metricsBindAddress": "127.0.0.1:10249",
        "clientConnection": {"kubeconfig": str(kubeconfig_path(cfg, "kube-proxy"))},
        # 0: leave the host's conntrack table size alone.
        "conntrack": {"maxPerCore": 0, "min": 0},
        "nodePortAddresses": [f"{cfg.node_ip}/32"],
    }


def _corefile(cfg: ClusterConfig) -> str:
    return f""".:53 {{
    bind {cfg.dns_ip}
    errors
    health 127.0.0.1:18090
    ready 127.0.0.1:18091
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig_path(cfg, 'coredns')} slm-local
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 30
}}
"""


def write_node_files(cfg: ClusterConfig, pki: Pki) -> None:
    """Every kubeconfig and configuration file the node's processes read."""
    for user in ("admin", "controller-manager", "scheduler", "kube-proxy", "coredns", "kubelet"):
        write_kubeconfig(cfg, pki, user)
    cfg.config_dir.mkdir(parents=True, exist_ok=True)
    (cfg.config_dir / "containerd.toml").write_text(_containerd_config(cfg))
    (cfg.config_dir / "cni").mkdir(exist_ok=True)
    (cfg.config_dir / "cni" / "10-slm-pods.conflist").write_text(json.dumps(_cni_config(cfg), indent=2))
    (cfg.config_dir / "kubelet.yaml").write_text(yaml.safe_dump(_kubelet_config(cfg, pki), sort_keys=False))
    (cfg.config_dir / "kube-proxy.yaml").write_text(yaml.safe_dump(_kube_proxy_config(cfg), sort_keys=False))
    (cfg.config_dir / "Corefile").write_text(_corefile(cfg))
