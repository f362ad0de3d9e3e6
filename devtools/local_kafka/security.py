"""The secured listeners of the local broker (``slm kafka up --secure``): what an enterprise
cluster demands of the services' clients, for tests and trials on this machine.

- ``SSL`` on ``ssl_port`` (default port + 2) with ``ssl.client.auth=required``: mutual TLS, as a
  Strimzi ``tls`` user connects;
- ``SASL_SSL`` on ``sasl_port`` (default port + 3) with ``SCRAM-SHA-512``.

The certificates come from a throwaway CA made for this broker's data folder on first start
(``<data_dir>/security``): the broker's (SAN ``127.0.0.1`` and ``localhost``), and one client
certificate (CN ``slm``) for the services. Broker and clients read PEM files (``ssl.keystore.type
=PEM``), unencrypted, mode 0600. The SCRAM user ``slm`` gets a random password, created with
Kafka's own ``kafka-configs`` tool (``kafka.admin.ConfigCommand``) once the broker answers.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["SCRAM_MECHANISM", "SCRAM_USER", "SecurityFiles", "client_settings", "ensure_security_files",
           "listener_properties", "scram_command"]

SCRAM_USER: Final = "slm"
SCRAM_MECHANISM: Final = "SCRAM-SHA-512"
_VALIDITY: Final = dt.timedelta(days=30)


@dataclass(frozen=True)
class SecurityFiles:
    """The PEM files and the SCRAM password of one secured broker, in one folder."""

    folder: Path

    @property
    def ca_cert(self) -> Path:
        return self.folder / "ca.crt"

    @property
    def broker_pem(self) -> Path:
        """The broker's private key and certificate chain, in one file (Kafka's PEM keystore)."""
        return self.folder / "broker.pem"

    @property
    def client_cert(self) -> Path:
        return self.folder / "client.crt"

    @property
    def client_key(self) -> Path:
        return self.folder / "client.key"

    @property
    def scram_password_file(self) -> Path:
        return self.folder / "scram-password"

    def scram_password(self) -> str:
        return self.scram_password_file.read_text().strip()

    def complete(self) -> bool:
        return all(p.is_file() for p in (self.ca_cert, self.broker_pem, self.client_cert, self.client_key,
                                         self.scram_password_file))


def _key() -> rsa.RSAPrivateKey:
    # RSA: the key type every TLS stack here (the JDK's PEM keystore, OpenSSL) reads without options.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write_private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def _certificate(subject: str, issuer: x509.Name | None, public_key, signing_key, *, ca: bool = False,
                 usage: list | None = None, ips: tuple[str, ...] = (), dns: tuple[str, ...] = ()) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name).public_key(public_key)
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + _VALIDITY)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    if ips or dns:
        names = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips] + [x509.DNSName(d) for d in dns]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def ensure_security_files(folder: Path) -> SecurityFiles:
    """Make the CA, the broker's and the client's certificates and the SCRAM password once per folder."""
    files = SecurityFiles(folder)
    if files.complete():
        return files
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    ca_key = _key()
    ca = _certificate("slm-local-kafka-ca", None, ca_key.public_key(), ca_key, ca=True)
    broker_key = _key()
    broker = _certificate("localhost", ca.subject, broker_key.public_key(), ca_key,
                          usage=[ExtendedKeyUsageOID.SERVER_AUTH], ips=("127.0.0.1",), dns=("localhost",))
    client_key = _key()
    client = _certificate(SCRAM_USER, ca.subject, client_key.public_key(), ca_key,
                          usage=[ExtendedKeyUsageOID.CLIENT_AUTH])
    pem = serialization.Encoding.PEM
    files.ca_cert.write_bytes(ca.public_bytes(pem))
    _write_private(files.broker_pem, _pem_key(broker_key) + broker.public_bytes(pem) + ca.public_bytes(pem))
    files.client_cert.write_bytes(client.public_bytes(pem))
    _write_private(files.client_key, _pem_key(client_key))
    _write_private(files.scram_password_file, (secrets.token_urlsafe(24) + "\n").encode())
    return files


def listener_properties(files: SecurityFiles, host: str, ssl_port: int, sasl_port: int) -> tuple[str, str, dict]:
    """The listeners, their protocol map entries and the settings of the two secured listeners."""
    listeners = f"SSL://{host}:{ssl_port},SASL_SSL://{host}:{sasl_port}"
    protocols = "SSL:SSL,SASL_SSL:SASL_SSL"
    settings = {
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(files.broker_pem),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(files.ca_cert),
        "listener.name.ssl.ssl.client.auth": "required",
        "sasl.enabled.mechanisms": SCRAM_MECHANISM,
        "listener.name.sasl_ssl.sasl.enabled.mechanisms": SCRAM_MECHANISM,
        f"listener.name.sasl_ssl.{SCRAM_MECHANISM.lower()}.sasl.jaas.config":
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
    }
    return listeners, protocols, settings


def scram_command(java_base: list[str], bootstrap: str, password: str) -> list[str]:
    """``kafka-configs --alter --add-config SCRAM-SHA-512=[...] --entity-type users --entity-name slm``."""
    return [*java_base, "kafka.admin.ConfigCommand", "--bootstrap-server", bootstrap, "--alter",
            "--add-config", f"{SCRAM_MECHANISM}=[iterations=4096,password={password}]",
            "--entity-type", "users", "--entity-name", SCRAM_USER]


def client_settings(files: SecurityFiles, host: str, ssl_port: int, sasl_port: int) -> dict[str, dict[str, str]]:
    """The ``SLM_KAFKA_*`` settings of a client of each secured listener."""
    return {
        "SSL": {"SLM_KAFKA_BOOTSTRAP": f"{host}:{ssl_port}", "SLM_KAFKA_SECURITY_PROTOCOL": "SSL",
                "SLM_KAFKA_SSL_CAFILE": str(files.ca_cert), "SLM_KAFKA_SSL_CERTFILE": str(files.client_cert),
                "SLM_KAFKA_SSL_KEYFILE": str(files.client_key)},
        "SASL_SSL": {"SLM_KAFKA_BOOTSTRAP": f"{host}:{sasl_port}", "SLM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                     "SLM_KAFKA_SSL_CAFILE": str(files.ca_cert), "SLM_KAFKA_SASL_MECHANISM": SCRAM_MECHANISM,
                     "SLM_KAFKA_SASL_USERNAME": SCRAM_USER,
                     "SLM_KAFKA_SASL_PASSWORD": files.scram_password()},
    }
