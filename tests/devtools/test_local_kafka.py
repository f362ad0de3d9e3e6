"""Tests for devtools.local_kafka (the package: config, wire protocol, properties, processes, up/down).

The unit tests need nothing but Python.  The ``integration`` tests start a real
KRaft broker on 127.0.0.1:19092/19093 (non-default ports, so a developer's
broker on 9092 is untouched) with a temporary data dir and the shared jar
cache; they need ``java`` and ``mvn`` (the first run downloads ~44 MB of jars).
"""

from __future__ import annotations

import shutil
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools import local_kafka as lk
from devtools.local_kafka.processes import pid_alive
from devtools.local_kafka.properties import server_properties

TEST_PORT = 19092
TEST_CONTROLLER_PORT = 19093


# --------------------------------------------------------------------------- unit


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SLM_CACHE_DIR", str(tmp_path))
    cfg = lk.BrokerConfig()
    assert (cfg.host, cfg.port, cfg.controller_port, cfg.default_partitions) == (
        "127.0.0.1",
        9092,
        9093,
        3,
    )
    assert cfg.cache_dir == tmp_path
    assert cfg.data_dir == tmp_path / "kafka-data-9092"
    assert cfg.libs_dir == tmp_path / f"kafka-{lk.kafka_version()}" / "libs"
    assert lk.bootstrap(cfg) == "127.0.0.1:9092"


def test_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = {
        "SLM_KAFKA_PORT": "29092",
        "SLM_KAFKA_DATA_DIR": str(tmp_path / "data"),
        "SLM_CACHE_DIR": str(tmp_path / "cache"),
        "SLM_KAFKA_PARTITIONS": "5",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SLM_KAFKA_CONTROLLER_PORT", raising=False)
    cfg = lk.BrokerConfig.from_env()
    assert cfg.port == 29092
    assert cfg.controller_port == 29093
    assert cfg.data_dir == tmp_path / "data"
    assert cfg.cache_dir == tmp_path / "cache"
    assert cfg.default_partitions == 5
    assert lk.bootstrap(cfg) == "127.0.0.1:29092"


def test_from_env_rejects_garbage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLM_KAFKA_PORT", "ninety")
    with pytest.raises(lk.BrokerError, match="SLM_KAFKA_PORT"):
        lk.BrokerConfig.from_env()
    with pytest.raises(lk.BrokerError):
        lk.BrokerConfig(host="0.0.0.0")


def test_server_properties(tmp_path: Path) -> None:
    cfg = lk.BrokerConfig(port=19192, data_dir=tmp_path, default_partitions=4)
    props = dict(
        line.split("=", 1)
        for line in server_properties(cfg).splitlines()
        if line and not line.startswith("#")
    )
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19192,CONTROLLER://127.0.0.1:19193"
    assert props["num.partitions"] == "4"
    assert props["log.dirs"] == str(tmp_path / "logs")
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"


def test_a_cluster_listener_serves_the_local_clusters_pods(tmp_path: Path) -> None:
    cfg = lk.BrokerConfig(port=19192, data_dir=tmp_path, cluster_listener="10.244.0.1:19194")
    props = dict(line.split("=", 1) for line in server_properties(cfg).splitlines() if line and not line.startswith("#"))
    assert props["listeners"].endswith(",CLUSTER://10.244.0.1:19194")
    assert props["advertised.listeners"] == props["listeners"]  # pods are told the node address, not 127.0.0.1
    assert "CLUSTER:PLAINTEXT" in props["listener.security.protocol.map"].split(",")
    for bad in ("10.244.0.1", "10.244.0.1:19192", "10.244.0.1:19193", ":19194"):
        with pytest.raises(lk.BrokerError, match="cluster_listener"):
            lk.BrokerConfig(port=19192, data_dir=tmp_path, cluster_listener=bad)


def test_a_secure_broker_demands_client_certificates_and_scram_on_its_own_listeners(tmp_path: Path) -> None:
    from cryptography import x509

    from devtools.local_kafka.security import SecurityFiles, ensure_security_files

    cfg = lk.BrokerConfig(port=19192, data_dir=tmp_path, secure=True)
    assert (cfg.ssl_port, cfg.sasl_port) == (19194, 19195) and cfg.ports == (19192, 19193, 19194, 19195)
    props = dict(line.split("=", 1) for line in server_properties(cfg).splitlines() if line and not line.startswith("#"))
    assert props["listeners"].endswith(",SSL://127.0.0.1:19194,SASL_SSL://127.0.0.1:19195")
    assert props["listener.name.ssl.ssl.client.auth"] == "required"
    assert props["listener.name.sasl_ssl.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["ssl.keystore.type"] == props["ssl.truststore.type"] == "PEM"
    files = ensure_security_files(cfg.security_dir)
    assert files == SecurityFiles(cfg.security_dir) and files.complete()
    broker = x509.load_pem_x509_certificates(files.broker_pem.read_bytes())[0]
    names = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    for secret in (files.broker_pem, files.client_key, files.scram_password_file):
        assert secret.stat().st_mode & 0o077 == 0, f"{secret} is readable by others"
    before = files.ca_cert.read_bytes()
    assert ensure_security_files(cfg.security_dir).ca_cert.read_bytes() == before, "made once per data folder"
    with pytest.raises(lk.BrokerError, match="must all differ"):
        lk.BrokerConfig(port=19192, data_dir=tmp_path, secure=True, ssl_port=19193)


def test_not_running(tmp_path: Path) -> None:
    cfg = lk.BrokerConfig(port=19292, data_dir=tmp_path / "nothing")
    st = lk.status(cfg)
    assert st["running"] is False and st["pid"] is None
    lk.down(cfg)  # idempotent, no error
    cfg.data_dir.mkdir()
    cfg.pid_file.write_text("999999999\n")  # stale
    lk.down(cfg)
    assert not cfg.pid_file.exists()


def _fake_broker(sock: socket.socket) -> None:
    """Answer one ApiVersions v0 request like a broker would."""
    conn, _ = sock.accept()
    with conn:
        (size,) = struct.unpack(">i", conn.recv(4))
        req = b""
        while len(req) < size:
            req += conn.recv(size - len(req))
        api_key, version, correlation = struct.unpack_from(">hhi", req)
        assert (api_key, version) == (18, 0)
        body = struct.pack(">ihi", correlation, 0, 2) + struct.pack(">hhhhhh", 0, 0, 11, 18, 0, 4)
        conn.sendall(struct.pack(">i", len(body)) + body)


def test_api_versions_wire_format() -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        thread = threading.Thread(target=_fake_broker, args=(srv,), daemon=True)
        thread.start()
        versions = lk.api_versions("127.0.0.1", srv.getsockname()[1])
        thread.join(5)
    assert versions == {0: (0, 11), 18: (0, 4)}


# --------------------------------------------------------------------------- integration

needs_toolchain = pytest.mark.skipif(
    shutil.which("java") is None or shutil.which("mvn") is None,
    reason="java and mvn are needed to run a real Kafka broker",
)


@pytest.fixture(scope="module")
def broker_cfg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[lk.BrokerConfig]:
    """A broker config on non-default ports with a throwaway data dir."""
    cfg = lk.BrokerConfig(
        port=TEST_PORT,
        controller_port=TEST_CONTROLLER_PORT,
        data_dir=tmp_path_factory.mktemp("kafka-data"),
    )
    try:
        yield cfg
    finally:
        lk.down(cfg)


@pytest.fixture
def running(broker_cfg: lk.BrokerConfig) -> lk.BrokerConfig:
    """Ensure the broker is up (cheap when it already is)."""
    lk.up(broker_cfg, timeout=90)
    return broker_cfg


@pytest.mark.integration
@needs_toolchain
def test_up_is_idempotent(running: lk.BrokerConfig) -> None:
    pid = lk.status(running)["pid"]
    started = time.monotonic()
    lk.up(running)
    assert time.monotonic() - started < 5
    assert lk.status(running)["pid"] == pid


@pytest.mark.integration
@needs_toolchain
def test_status_reports_running(running: lk.BrokerConfig) -> None:
    st = lk.status(running)
    assert st["running"] is True
    assert isinstance(st["pid"], int)
    assert st["bootstrap"] == f"127.0.0.1:{TEST_PORT}"
    assert st["data_dir"] == str(running.data_dir)
    assert Path(st["log_file"]).is_file()


@pytest.mark.integration
@needs_toolchain
def test_port_answers_api_versions(running: lk.BrokerConfig) -> None:
    versions = lk.api_versions("127.0.0.1", TEST_PORT)
    assert 18 in versions  # ApiVersions
    assert 0 in versions and 1 in versions  # Produce, Fetch


@pytest.mark.integration
@needs_toolchain
def test_down_stops_broker(running: lk.BrokerConfig) -> None:
    pid = lk.status(running)["pid"]
    lk.down(running)
    st = lk.status(running)
    assert st["running"] is False and st["pid"] is None
    assert not running.pid_file.exists()
    with pytest.raises(OSError):
        lk.api_versions("127.0.0.1", TEST_PORT, timeout=1)
    assert pid is not None and not pid_alive(pid)
    lk.down(running)  # idempotent


def test_kafka_up_takes_the_cluster_listener_the_walk_through_uses(tmp_path: Path) -> None:
    from devtools.commands.kafka_commands import _broker_config

    cfg = _broker_config(19092, tmp_path, cluster_listener="10.244.0.1:19094")
    assert (cfg.port, cfg.cluster_listener) == (19092, "10.244.0.1:19094")
    assert "CLUSTER://10.244.0.1:19094" in server_properties(cfg)
    assert _broker_config(None, tmp_path).cluster_listener is None
