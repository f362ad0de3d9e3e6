"""The node's network: a bridge of the project's own, the kernel settings a Service needs, and
the removal of everything the node added, so ``down`` leaves the host as it was.

- The bridge carries the node address (the pods' gateway) and the route to Service addresses; the
  CNI bridge plugin attaches pods to it.
- ``net.ipv4.ip_forward`` is needed for a pod's packet to a Service address, which kube-proxy
  rewrites to another pod on the same bridge, to be routed back onto it. The value found at ``up``
  is kept in the state folder and restored at ``down``.
- With forwarding on, a chain of ours drops whatever a pod sends towards any other interface:
  the cluster's traffic never leaves the bridge and loopback.
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
from pathlib import Path
from typing import Final

from devtools.errors import ClusterError
from devtools.local_cluster.config import ClusterConfig

__all__ = ["FORWARD_CHAIN", "network_down", "network_up", "unmount_under"]

logger = logging.getLogger(__name__)

FORWARD_CHAIN: Final = "SLM-CLUSTER-FORWARD"
_SYSCTLS: Final = {"net/ipv4/ip_forward": "1", "net/bridge/bridge-nf-call-iptables": "1"}


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(list(args), capture_output=True, text=True, timeout=60)
    if check and result.returncode != 0:
        raise ClusterError(f"{' '.join(args)} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result


def _sysctl_file(cfg: ClusterConfig) -> Path:
    return cfg.run_dir / "sysctl-before-up.json"


def _set_sysctls(cfg: ClusterConfig) -> None:
    saved = _sysctl_file(cfg)
    if not saved.is_file():  # a second `up` must not record the values the first one set
        before = {key: Path("/proc/sys", key).read_text().strip() for key in _SYSCTLS}
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(before))
    for key, value in _SYSCTLS.items():
        Path("/proc/sys", key).write_text(value)


def _restore_sysctls(cfg: ClusterConfig) -> None:
    saved = _sysctl_file(cfg)
    if not saved.is_file():
        return
    for key, value in json.loads(saved.read_text()).items():
        with contextlib.suppress(OSError):
            Path("/proc/sys", key).write_text(value)
    saved.unlink()


def _node_chains() -> set[tuple[str, str, str]]:
    """(command, table, chain) of every KUBE-* chain: the kubelet and kube-proxy make them, in
    IPv4 and IPv6, and ``kube-proxy --cleanup`` leaves the kubelet's and the canaries."""
    chains = set()
    for command in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle"):
            listing = _run(command, "-w", "-t", table, "-S", check=False).stdout
            chains |= {(command, table, line.split()[1]) for line in listing.splitlines()
                       if line.startswith("-N KUBE-")}
    return chains


def _chains_file(cfg: ClusterConfig) -> Path:
    return cfg.run_dir / "kube-chains-before-up.json"


def _remove_node_chains(cfg: ClusterConfig) -> None:
    """Remove the KUBE-* chains that were not there before ``up`` (and the rules that jump to them)."""
    saved = _chains_file(cfg)
    before = {tuple(c) for c in json.loads(saved.read_text())} if saved.is_file() else set()
    ours = _node_chains() - before
    for command, table, chain in sorted(ours):
        for rule in _run(command, "-w", "-t", table, "-S", check=False).stdout.splitlines():
            parts = rule.split()
            if parts[:1] == ["-A"] and f"-j {chain}" in rule and (command, table, parts[1]) not in ours:
                _run(command, "-w", "-t", table, "-D", *parts[1:], check=False)
    for command, table, chain in sorted(ours):
        _run(command, "-w", "-t", table, "-F", chain, check=False)
    for command, table, chain in sorted(ours):
        _run(command, "-w", "-t", table, "-X", chain, check=False)
    saved.unlink(missing_ok=True)


def _bridge_exists(cfg: ClusterConfig) -> bool:
    return Path("/sys/class/net", cfg.bridge).exists()


def network_up(cfg: ClusterConfig) -> None:
    """The bridge with the node address, the kernel settings, and the forward guard."""
    if not _bridge_exists(cfg):
        _run("ip", "link", "add", cfg.bridge, "type", "bridge")
    address = f"{cfg.node_ip}/{cfg.pod_prefix_length}"
    if address not in _run("ip", "-4", "addr", "show", "dev", cfg.bridge).stdout:
        _run("ip", "addr", "add", address, "dev", cfg.bridge)
    _run("ip", "link", "set", cfg.bridge, "up")
    # Service addresses are rewritten by kube-proxy; one it has not rewritten (yet) stays on the
    # bridge instead of following the default route out of the machine. Goes with the bridge.
    _run("ip", "route", "replace", cfg.service_cidr, "dev", cfg.bridge)
    _set_sysctls(cfg)
    if not _chains_file(cfg).is_file():
        _chains_file(cfg).write_text(json.dumps(sorted(_node_chains())))
    if _run("iptables", "-w", "-n", "-L", FORWARD_CHAIN, check=False).returncode != 0:
        _run("iptables", "-w", "-N", FORWARD_CHAIN)
        _run("iptables", "-w", "-A", FORWARD_CHAIN, "-i", cfg.bridge, "!", "-o", cfg.bridge, "-j", "DROP")
        _run("iptables", "-w", "-A", FORWARD_CHAIN, "-o", cfg.bridge, "!", "-i", cfg.bridge, "-j", "DROP")
    if _run("iptables", "-w", "-C", "FORWARD", "-j", FORWARD_CHAIN, check=False).returncode != 0:
        _run("iptables", "-w", "-I", "FORWARD", "1", "-j", FORWARD_CHAIN)


def unmount_under(folder: Path) -> list[str]:
    """Unmount every mount point under ``folder``, deepest first; return those that stayed."""
    prefix = str(folder.resolve()) + "/"
    stuck: list[str] = []
    for _ in range(3):  # a mount can hide another at the same point
        with open("/proc/self/mounts") as fh:
            points = [line.split()[1].replace("\\040", " ") for line in fh]
        ours = sorted({p for p in points if p.startswith(prefix)}, key=len, reverse=True)
        if not ours:
            return []
        stuck = [p for p in ours if _run("umount", "-l", p, check=False).returncode != 0]
    return stuck


def _remove_cni_netns() -> None:
    """Network namespaces that containerd's CNI left (``cni-<uuid>``), when a sandbox was not removed."""
    netns_dir = Path("/var/run/netns")
    for ns in netns_dir.glob("cni-*") if netns_dir.is_dir() else ():
        _run("ip", "netns", "delete", ns.name, check=False)


def network_down(cfg: ClusterConfig, kube_proxy: Path | None) -> None:
    """Remove the node's chains, namespaces and bridge, and restore the kernel settings."""
    if kube_proxy is not None and kube_proxy.is_file():
        _run(str(kube_proxy), "--cleanup", check=False)  # kube-proxy's own KUBE-* chains
    while _run("iptables", "-w", "-D", "FORWARD", "-j", FORWARD_CHAIN, check=False).returncode == 0:
        pass
    _run("iptables", "-w", "-F", FORWARD_CHAIN, check=False)
    _run("iptables", "-w", "-X", FORWARD_CHAIN, check=False)
    _remove_node_chains(cfg)
    _remove_cni_netns()
    if _bridge_exists(cfg):
        _run("ip", "link", "delete", cfg.bridge, check=False)
    _restore_sysctls(cfg)
