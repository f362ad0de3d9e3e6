"""One root exception for the project, one subclass per area.

Every message names the bad value, so a log line or an HTTP 4xx body is enough to act on.
"""

from __future__ import annotations

__all__ = [
    "SlmError",
    "ConfigError",
    "DataError",
    "ModelError",
    "MessageError",
    "ProduceError",
    "ProducerFenced",
    "RebalanceStalled",
]


class SlmError(Exception):
    """Root of every error raised on purpose by slm-services."""


class ConfigError(SlmError):
    """A setting or command-line option has a value that cannot work."""


class DataError(SlmError):
    """A training or evaluation file is malformed (names the file, line and problem)."""


class ModelError(SlmError):
    """A model folder is missing, incomplete or inconsistent."""


class ProduceError(SlmError):
    """Records of a batch were not acknowledged; the batch is not committed and is retried."""


class ProducerFenced(SlmError):
    """Exactly once: a newer instance runs under this one's transactional id; this one stops consuming."""


class RebalanceStalled(SlmError):
    """The consumer's rebalance did not finish in time; the loop rebuilds its clients."""


class MessageError(SlmError):
    """An incoming message cannot be processed; ``error_type`` goes to the DLQ headers."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
