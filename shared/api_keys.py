"""API keys for the REST API: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.

The service never holds a key, only its SHA-256 digest: ``SLM_API_KEYS_FILE`` lists one
lowercase hex digest per line (``#`` starts a comment; ``printf %s "$KEY" | sha256sum`` makes
one). A presented key is hashed and compared with every digest in constant time
(:func:`hmac.compare_digest`, with no early exit), so the answer's timing tells nothing about
which digest came close. The file is checked on every request (one ``stat``) and read again
when it changes, so keys rotate without a restart; a Kubernetes Secret mounted as a volume is
replaced by an atomic symlink swap, which this sees as a change. A file that turns invalid
keeps the previous keys and logs one error.

A missing or wrong key gets 401 with ``WWW-Authenticate: Bearer`` and the usual client-error
body; :data:`~shared.settings.ServiceSettings.open_paths` (probes, metrics, the API document)
stay open.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import threading
from collections.abc import Iterable
from pathlib import Path

from shared.client_errors import respond_client_error
from shared.errors import ConfigError

__all__ = ["ApiKeyMiddleware", "ApiKeys", "parse_digests", "SECURITY_SCHEMES"]

logger = logging.getLogger(__name__)

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
# The OpenAPI document's security schemes when keys are on; either header is accepted.
SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer",
                   "description": "Authorization: Bearer <API key>; the service stores only SHA-256 digests"},
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}


def parse_digests(text: str, source: str = "API keys file") -> frozenset[str]:
    """The digests in a keys file's *text*; a line that is not a lowercase SHA-256 hex digest is
    a :class:`ConfigError` naming its line number (never its content, which may be a real key)."""
    digests = set()
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        if not _DIGEST.match(entry):
            raise ConfigError(f"{source} line {number}: not a lowercase SHA-256 hex digest (64 characters 0-9a-f); "
                              f"store digests, not keys: printf %s \"$KEY\" | sha256sum")
        digests.add(entry)
    return frozenset(digests)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    """The digests of one keys file, read again whenever the file changes.

    Raises:
        ConfigError: at construction, when the file cannot be read or holds an invalid line.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp = self._stat()
        if self._stamp is None:
            raise ConfigError(f"SLM_API_KEYS_FILE={self.path}: no such file")
        self._digests = self._read()
        if not self._digests:
            logger.warning('API keys on, but %s holds no digest: every API request gets 401', self.path)

    def _stat(self):
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_ino, st.st_size, st.st_mtime_ns

    def _read(self) -> frozenset[str]:
        try:
            text = self.path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"SLM_API_KEYS_FILE={self.path}: cannot read it: {exc}") from None
        return parse_digests(text, f"SLM_API_KEYS_FILE={self.path}")

    def digests(self) -> frozenset[str]:
        """The current digests: read again if the file changed since the last look."""
        stamp = self._stat()
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    self._stamp = stamp
                    try:
                        self._digests = self._read() if stamp is not None else self._digests
                        logger.info('API keys reloaded path=%s keys=%d', self.path, len(self._digests))
                    except ConfigError as exc:
                        logger.error('API keys file changed and is invalid, keeping the previous keys: %s', exc)
        return self._digests

    def accepts(self, key: str | None) -> bool:
        """Whether *key* hashes to one of the digests; compares with all of them, in constant time."""
        if not key:
            return False
        presented = _digest(key)
        matched = False
        for digest in self.digests():
            matched |= hmac.compare_digest(presented, digest)
        return matched


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The key in ``Authorization: Bearer <key>`` or ``X-API-Key: <key>`` (ASGI raw headers)."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return credentials.strip()
        elif name == b"x-api-key" and value.strip():
            return value.decode("latin-1").strip()
    return None


class ApiKeyMiddleware:
    """401 for an HTTP request to any path but the open ones without a valid key.

    Args:
        app: the ASGI app.
        keys (`ApiKeys`): the accepted keys' digests.
        open_paths (`frozenset[str]`): answered without a key.
    """

    def __init__(self, app, keys: ApiKeys, open_paths: frozenset[str]) -> None:
        self.app = app
        self.keys = keys
        self.open_paths = open_paths

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("path", "") in self.open_paths:
            await self.app(scope, receive, send)
            return
        key = presented_key(scope.get("headers", []))
        if self.keys.accepts(key):
            await self.app(scope, receive, send)
            return
        reason = "missing API key: send Authorization: Bearer <key> or X-API-Key: <key>" if key is None \
            else "invalid API key"
        logger.warning('client error status=401 method=%s path=%s reason="%s"', scope.get("method"),
                       scope.get("path"), reason)
        await respond_client_error(send, 401, reason, headers=[(b"www-authenticate", b'Bearer realm="slm"')])
