"""The local cluster's pure parts: the build's go.mod rewrite, certificates, node files, the pause
image archive and the pid-file daemons. The cluster itself runs in tests/cluster."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devtools.local_cluster.build import kubernetes_ldflags, published_replaces
from devtools.local_cluster.config import ClusterConfig
from devtools.local_cluster.daemons import Daemon
from devtools.local_cluster.node_files import write_node_files
from devtools.local_cluster.pause_image import write_pause_archive
from devtools.local_cluster.pki import ensure_pki
from devtools.local_cluster.skaffold import skaffold_global_config

GO_MOD = """module k8s.io/kubernetes

require (
\tk8s.io/api v0.0.0
\tgithub.com/spf13/cobra v1.8.1
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/cri-client => ./staging/src/k8s.io/cri-client
\tgithub.com/example/fork => ../fork
)
"""


def test_staging_replaces_point_at_the_published_libraries_of_the_same_release():
    rewritten = published_replaces(GO_MOD, "v1.33.13")
    assert "\tk8s.io/api => k8s.io/api v0.33.13\n" in rewritten
    assert "\tk8s.io/cri-client => k8s.io/cri-client v0.33.13\n" in rewritten
    assert "./staging" not in rewritten
    assert "github.com/example/fork => ../fork" in rewritten  # only the staging replaces change


def test_version_ldflags_set_what_the_server_reports():
    flags = kubernetes_ldflags("v1.33.13")
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X {package}.gitVersion=v1.33.13" in flags
        assert f"-X {package}.gitMinor=33" in flags


def test_addresses_follow_the_pod_and_service_ranges(tmp_path):
    cfg = ClusterConfig(cache_dir=tmp_path, pod_cidr="10.250.0.0/24", service_cidr="10.100.0.0/16")
    assert cfg.node_ip == "10.250.0.1"
    assert cfg.kubernetes_service_ip == "10.100.0.1"
    assert cfg.server == "https://10.250.0.1:6443"
    with pytest.raises(ValueError, match="15 characters"):
        ClusterConfig(cache_dir=tmp_path, bridge="a-very-long-bridge")


def _cert(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_certificates_name_each_component_and_chain_to_the_ca(tmp_path):
    pki = ensure_pki(tmp_path / "pki", node_name="node-a", node_ip="10.244.0.1", service_ip="10.96.0.1")
    ca = _cert(pki.ca_cert)
    apiserver = _cert(pki.cert("apiserver"))
    ca.public_key().verify(apiserver.signature, apiserver.tbs_certificate_bytes, ec.ECDSA(apiserver.signature_hash_algorithm))
    names = apiserver.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} >= {"10.244.0.1", "10.96.0.1"}
    assert "kubernetes.default.svc.cluster.local" in names.get_values_for_type(x509.DNSName)

    kubelet = _cert(pki.cert("kubelet"))
    assert kubelet.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:node:node-a"
    assert kubelet.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:nodes"
    usages = kubelet.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    admin = _cert(pki.cert("admin"))
    assert admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    assert oct(pki.key("ca").stat().st_mode & 0o777) == "0o600"


def test_certificates_are_made_once(tmp_path):
    first = ensure_pki(tmp_path, node_name="n", node_ip="10.244.0.1", service_ip="10.96.0.1").ca_cert.read_bytes()
    again = ensure_pki(tmp_path, node_name="n", node_ip="10.244.0.1", service_ip="10.96.0.1").ca_cert.read_bytes()
    assert first == again


def test_node_files_keep_the_cluster_off_outside_addresses(tmp_path):
    cfg = ClusterConfig(cache_dir=tmp_path)
    write_node_files(cfg, ensure_pki(cfg.pki_dir, node_name=cfg.node_name, node_ip=cfg.node_ip,
                                     service_ip=cfg.kubernetes_service_ip))
    corefile = (cfg.config_dir / "Corefile").read_text()
    assert "kubernetes cluster.local" in corefile and "forward" not in corefile
    kubelet = yaml.safe_load((cfg.config_dir / "kubelet.yaml").read_text())
    assert kubelet["resolvConf"] == "" and kubelet["clusterDNS"] == [cfg.node_ip]
    cni = json.loads((cfg.config_dir / "cni" / "10-slm-pods.conflist").read_text())
    bridge = cni["plugins"][0]
    assert bridge["bridge"] == cfg.bridge and bridge["ipMasq"] is False
    kubeconfig = yaml.safe_load(cfg.kubeconfig.read_text())
    assert kubeconfig["clusters"][0]["cluster"]["server"] == f"https://{cfg.node_ip}:6443"
    assert str(cfg.containerd_socket) in (cfg.config_dir / "containerd.toml").read_text()


def test_pause_archive_is_a_docker_save_archive_of_one_layer(tmp_path):
    binary = tmp_path / "pause"
    binary.write_bytes(b"\x7fELF not really")
    archive = write_pause_archive(binary, "registry.k8s.io/pause:3.10", tmp_path / "pause.tar")
    with tarfile.open(archive) as tar:
        (manifest,) = json.loads(tar.extractfile("manifest.json").read())
        assert manifest["RepoTags"] == ["registry.k8s.io/pause:3.10"]
        layer = tar.extractfile(manifest["Layers"][0]).read()
        config = json.loads(tar.extractfile(manifest["Config"]).read())
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer).hexdigest()]
    assert config["config"]["Entrypoint"] == ["/pause"]
    with tarfile.open(fileobj=io.BytesIO(layer)) as inner:
        member = inner.getmember("pause")
        assert member.mode == 0o755 and inner.extractfile(member).read() == binary.read_bytes()


def test_daemon_is_found_by_its_pid_file_and_stopped(tmp_path):
    daemon = Daemon("sleeper", ["/bin/sleep", "300"], tmp_path / "run", tmp_path / "logs")
    pid = daemon.start()
    try:
        assert daemon.process().pid == pid
        assert daemon.start() == pid  # a running daemon is not started twice
    finally:
        assert daemon.stop() is True
    assert daemon.process() is None and not daemon.pid_file.exists()
    assert daemon.stop() is False


def test_a_reused_pid_is_never_taken_for_the_daemon(tmp_path):
    other = subprocess.Popen(["/bin/cat"], stdin=subprocess.PIPE)
    try:
        daemon = Daemon("sleeper", ["/bin/sleep", "300"], tmp_path, tmp_path)
        daemon.pid_file.write_text(f"{other.pid}\n")
        assert daemon.process() is None
        assert daemon.stop() is False
        assert other.poll() is None  # the other process was not signalled
    finally:
        other.kill()
        other.wait()


def test_skaffold_never_sends_metrics_or_checks_for_updates(tmp_path):
    config = yaml.safe_load(skaffold_global_config(tmp_path / "skaffold" / "config").read_text())["global"]
    assert config["collect-metrics"] is False and config["update-check"] is False
    assert config["survey"]["disable-prompt"] is True and config["local-cluster"] is True
