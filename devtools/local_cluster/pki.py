"""The local cluster's certificates: one CA, the API server's serving certificate, a client
certificate per component, and the service-account signing key.

What kubeadm would make, reduced to one node: every component authenticates to the API server
with a client certificate whose CN is its user (``system:kube-scheduler``...) and whose O is its
group (``system:masters`` for the admin, ``system:nodes`` for the kubelet), so the API server's
Node and RBAC authorizers grant exactly the built-in roles. Keys are EC P-256: fast to make on
2 cores, accepted by every component.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["ClientIdentity", "CLIENTS", "Pki", "ensure_pki"]

_VALIDITY: Final = dt.timedelta(days=365)


@dataclass(frozen=True)
class ClientIdentity:
    """A component's identity to the API server: file stem, user (CN) and group (O)."""

    name: str
    user: str
    group: str | None = None


#: The client certificates made for every cluster (the kubelet's is per node, see :func:`ensure_pki`).
CLIENTS: Final = (
    ClientIdentity("admin", "kubernetes-admin", "system:masters"),
    ClientIdentity("controller-manager", "system:kube-controller-manager"),
    ClientIdentity("scheduler", "system:kube-scheduler"),
    ClientIdentity("kube-proxy", "system:kube-proxy"),
    ClientIdentity("coredns", "system:coredns"),
    # The API server's own client identity when it calls kubelets (logs, exec, port-forward).
    ClientIdentity("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"),
)


@dataclass(frozen=True)
class Pki:
    """Paths of the PEM files in one folder."""

    folder: Path

    def cert(self, name: str) -> Path:
        return self.folder / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.folder / f"{name}.key"

    @property
    def ca_cert(self) -> Path:
        return self.cert("ca")

    @property
    def service_account_key(self) -> Path:
        return self.folder / "sa.key"

    @property
    def service_account_pub(self) -> Path:
        return self.folder / "sa.pub"


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _builder(subject: x509.Name, issuer: x509.Name, public_key, now: dt.datetime) -> x509.CertificateBuilder:
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + _VALIDITY))


def _make_ca(pki: Pki, now: dt.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    name = _name("slm-local-cluster-ca")
    cert = (_builder(name, name, key.public_key(), now)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    _write_key(pki.key("ca"), key)
    pki.ca_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _issue(pki: Pki, name: str, subject: x509.Name, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
           now: dt.datetime, *, server_names: tuple[str, ...] = (), server_ips: tuple[str, ...] = (),
           client: bool = True) -> None:
    ca_cert, ca_key = ca
    key = _new_key()
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
    builder = _builder(subject, ca_cert.subject, key.public_key(), now).add_extension(
        x509.BasicConstraints(ca=False, path_length=None), critical=True)
    if server_names or server_ips:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        alt = [x509.DNSName(n) for n in server_names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in server_ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_key(pki.key(name), key)
    pki.cert(name).write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def ensure_pki(folder: Path, *, node_name: str, node_ip: str, service_ip: str) -> Pki:
    """Make the certificates once; a folder that already has its CA is kept as it is.

    Args:
        node_name: the node's name, the kubelet's user ``system:node:<node_name>``.
        node_ip: the address the API server and the kubelet serve on.
        service_ip: the ``kubernetes`` Service's cluster IP, which pods use to reach the API server.
    """
    pki = Pki(folder)
    if pki.ca_cert.is_file() and pki.service_account_pub.is_file():
        return pki
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    ca = _make_ca(pki, now)
    _issue(pki, "apiserver", _name("kube-apiserver"), ca, now, client=False,
           server_names=("kubernetes", "kubernetes.default", "kubernetes.default.svc",
                         "kubernetes.default.svc.cluster.local", "localhost", node_name),
           server_ips=(node_ip, service_ip, "127.0.0.1"))
    _issue(pki, "kubelet-server", _name(f"system:node:{node_name}", "system:nodes"), ca, now, client=False,
           server_names=(node_name, "localhost"), server_ips=(node_ip, "127.0.0.1"))
    _issue(pki, "kubelet", _name(f"system:node:{node_name}", "system:nodes"), ca, now)
    for identity in CLIENTS:
        _issue(pki, identity.name, _name(identity.user, identity.group), ca, now)
    sa_key = _new_key()
    _write_key(pki.service_account_key, sa_key)
    pki.service_account_pub.write_bytes(sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return pki
