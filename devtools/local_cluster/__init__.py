"""A one-node Kubernetes cluster on this machine, for the charts' end-to-end tests and CI.

Upstream Kubernetes built from the Go module proxy, etcd and containerd from Debian, CoreDNS and
the KubeRay operator from the module proxy; no image registry and no outside address is used.

- :mod:`~devtools.local_cluster.config`: :class:`ClusterConfig` (versions, addresses, folders);
- :mod:`~devtools.local_cluster.build`: the binaries, built once into ``.cache/bin``;
- :mod:`~devtools.local_cluster.pki`: the CA and every component's certificate;
- :mod:`~devtools.local_cluster.node_files`: kubeconfigs and the components' configuration files;
- :mod:`~devtools.local_cluster.network`: the bridge, kernel settings and their removal;
- :mod:`~devtools.local_cluster.components`: the processes' command lines, in start order;
- :mod:`~devtools.local_cluster.daemons`: start, find and stop a process by its pid file;
- :mod:`~devtools.local_cluster.pause_image`: the sandbox image, made and imported without a registry;
- :mod:`~devtools.local_cluster.kubectl`: kubectl with the admin's kubeconfig;
- :mod:`~devtools.local_cluster.lifecycle`: :func:`up`, :func:`down`, :func:`status`.
"""

from devtools.errors import ClusterError
from devtools.local_cluster.config import ClusterConfig
from devtools.local_cluster.kubectl import kubectl
from devtools.local_cluster.lifecycle import down, status, up

__all__ = ["ClusterConfig", "ClusterError", "down", "kubectl", "status", "up"]
