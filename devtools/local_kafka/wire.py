"""Is a Kafka broker answering? A real ``ApiVersions`` (v0) request over a plain socket.

Needs nothing outside the standard library, so readiness is checked before any client
library is loaded.
"""

from __future__ import annotations

import socket
import struct
from typing import Final

from devtools.errors import BrokerError

__all__ = ["api_versions", "answers", "port_open"]

_API_VERSIONS_KEY: Final = 18
_CORRELATION_ID: Final = 0x534C4D31  # "SLM1"
_CLIENT_ID: Final = b"slm-local-kafka"
_MAX_RESPONSE_BYTES: Final = 1 << 20


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    """Read exactly *n* bytes from *sock*."""
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        buf += chunk
    return bytes(buf)


def api_versions(host: str, port: int, timeout: float = 2.0) -> dict[int, tuple[int, int]]:
    """Send a Kafka ``ApiVersions`` v0 request; return ``{api_key: (min, max)}``.

    Request: ``size:int32 | api_key:int16=18 | api_version:int16=0 |
    correlation_id:int32 | client_id:string`` (request header v1, empty body).
    Response: ``size:int32 | correlation_id:int32 | error_code:int16 |
    [api_key:int16 min:int16 max:int16]`` (response header v0).

    Raises:
        OSError: on connection problems (including timeouts).
        BrokerError: if the peer does not answer like a Kafka broker.
    """
    header = struct.pack(">hhih", _API_VERSIONS_KEY, 0, _CORRELATION_ID, len(_CLIENT_ID))
    request = header + _CLIENT_ID
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        if not 10 <= size <= _MAX_RESPONSE_BYTES:
            raise BrokerError(f"{host}:{port}: implausible ApiVersions response size {size}")
        payload = _recv_exact(sock, size)
    try:
        correlation_id, error_code, count = struct.unpack_from(">ihi", payload, 0)
        if correlation_id != _CORRELATION_ID:
            raise BrokerError(f"{host}:{port}: correlation id mismatch ({correlation_id:#x})")
        if error_code != 0:
            raise BrokerError(f"{host}:{port}: ApiVersions error code {error_code}")
        if not 0 < count <= (size - 10) // 6:
            raise BrokerError(f"{host}:{port}: implausible ApiVersions count {count}")
        versions: dict[int, tuple[int, int]] = {}
        for i in range(count):
            key, lo, hi = struct.unpack_from(">hhh", payload, 10 + 6 * i)
            versions[key] = (lo, hi)
    except struct.error as exc:
        raise BrokerError(f"{host}:{port}: malformed ApiVersions response: {exc}") from exc
    return versions


def answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """Return True if ``host:port`` answers an ApiVersions request."""
    try:
        return _API_VERSIONS_KEY in api_versions(host, port, timeout=timeout)
    except (OSError, BrokerError):
        return False


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Return True if something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
