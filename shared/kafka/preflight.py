"""A Kafka client's credentials checked once at start: a wrong password or an untrusted
certificate is one clear line there, not a consumer that retries for ever while looking healthy.

kafka-python retries a failed bootstrap with backoff until its own timeout and then reports
only "Unable to bootstrap"; the reason is in the connection manager's log record of each
attempt. :func:`check_credentials` starts a client's bootstrap, reads those records, and
stops at the first one that says the configuration is wrong (authentication, TLS trust).
A broker that cannot be reached is not a configuration error: the service starts and its
loop waits for the broker, as it does through any outage.
"""

from __future__ import annotations

import logging
import threading
from typing import Final

from shared.errors import ConfigError
from shared.kafka.settings import KafkaSettings

__all__ = ["check_credentials", "diagnose"]

logger = logging.getLogger(__name__)

_MANAGER_LOGGER: Final = "kafka.net.manager"
_UNREACHABLE: Final = ("econnrefused", "connection refused", "ehostunreach", "enetunreach", "name or service not known")


def diagnose(message: str, settings: KafkaSettings) -> str | None:
    """The configuration error a failed bootstrap attempt's log *message* reveals, or None."""
    lowered = message.lower()
    if "saslauthenticationfailed" in lowered or "authentication failed" in lowered:
        reason = message.split("SaslAuthenticationFailedError:")[-1].split(" (backoff")[0].strip()
        return (f"Kafka SASL authentication as {settings.sasl_username!r} ({settings.sasl_mechanism}) failed: {reason}; "
                f"check SLM_KAFKA_SASL_USERNAME, SLM_KAFKA_SASL_PASSWORD and SLM_KAFKA_SASL_MECHANISM")
    if "certificate_verify_failed" in lowered:
        reason = message.split("certificate verify failed:")[-1].split("(_ssl")[0].strip()
        return (f"Kafka TLS: the broker's certificate at {settings.bootstrap} is not trusted ({reason}); "
                f"SLM_KAFKA_SSL_CAFILE must name the CA that signed it (now {settings.ssl_cafile or 'the system CAs'})")
    if any(alert in lowered for alert in ("bad_certificate", "certificate_required", "unknown_ca",
                                          "certificate_unknown", "bad certificate")):
        given = f"SLM_KAFKA_SSL_CERTFILE={settings.ssl_certfile}" if settings.ssl_certfile else "no client certificate"
        return (f"Kafka TLS: the broker at {settings.bootstrap} refused the client certificate ({given}); it wants "
                f"one signed by a CA it trusts: set SLM_KAFKA_SSL_CERTFILE and SLM_KAFKA_SSL_KEYFILE")
    return None


class _Attempts(logging.Handler):
    """Collects the connection manager's failed-attempt records; wakes the waiter on a diagnosis."""

    def __init__(self, settings: KafkaSettings) -> None:
        super().__init__(logging.INFO)
        self.settings = settings
        self.error: str | None = None
        self.decided = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        found = diagnose(message, self.settings)
        if found and self.error is None:
            self.error = found
            self.decided.set()
        elif any(sign in message.lower() for sign in _UNREACHABLE):
            self.decided.set()  # an outage, not a configuration error: the loop waits for the broker


def check_credentials(settings: KafkaSettings, timeout_s: float = 60.0) -> None:
    """Bootstrap one client with *settings*; raise :class:`ConfigError` (one line) when the broker
    refuses its credentials or its certificate is not trusted. Returns once the client has
    connected, the broker could not be reached (not a configuration error), or *timeout_s* passed.
    """
    if not settings.bootstrap:
        return
    from kafka import KafkaAdminClient

    attempts = _Attempts(settings)
    manager = logging.getLogger(_MANAGER_LOGGER)
    previous_level = manager.level
    manager.addHandler(attempts)
    if manager.getEffectiveLevel() > logging.WARNING:
        manager.setLevel(logging.WARNING)
    # The client's own records of the failed attempts (a traceback per attempt) stay out of the
    # log: the one line raised below says what they would.
    client_logs = logging.getLogger("kafka")
    quiet = logging.NullHandler()
    previous_propagate = client_logs.propagate
    client_logs.addHandler(quiet)
    client_logs.propagate = False

    def bootstrap() -> None:
        try:
            KafkaAdminClient(**settings.client_options(), request_timeout_ms=int(timeout_s * 1000)).close()
        except Exception as exc:  # noqa: BLE001 - unreachable or refused: the records, or this, say which
            # A refused authentication is kept by the client and raised by its next attempt, which
            # can come before any record of the first one was read here.
            found = diagnose(f"{type(exc).__name__}: {exc}", settings)
            if found and attempts.error is None:
                attempts.error = found
        finally:
            attempts.decided.set()

    def restore() -> None:
        manager.removeHandler(attempts)
        manager.setLevel(previous_level)
        client_logs.removeHandler(quiet)
        client_logs.propagate = previous_propagate

    # The client's own retries run out later than we wait; the daemon thread then ends by itself.
    client = threading.Thread(target=bootstrap, name="kafka-preflight", daemon=True)
    client.start()
    # Long enough for a TLS and SCRAM handshake with a broker on a loaded machine: given up early,
    # a refused password would start a service that retries for ever.
    if not attempts.decided.wait(timeout_s):
        logger.warning("Kafka credentials not confirmed: %s neither accepted nor refused a client within %.0f s; "
                       "starting, and the consumer loop keeps trying", settings.bootstrap, timeout_s)
    if not attempts.error:
        restore()
        return
    # Quiet until the client gives up, so nothing of its retries follows the error line.
    threading.Thread(target=lambda: (client.join(), restore()), name="kafka-preflight-restore", daemon=True).start()
    raise ConfigError(attempts.error)
