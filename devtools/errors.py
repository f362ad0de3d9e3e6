"""The errors of the developer tools: one root, one class per tool; the CLI prints each as one line."""

from __future__ import annotations

from shared.errors import SlmError

__all__ = ["BrokerError", "ClusterError", "DevToolError", "ImageError", "LabelStudioError"]


class DevToolError(SlmError):
    """A developer tool cannot do what was asked."""


class BrokerError(DevToolError):
    """The local broker cannot be installed, started or stopped."""


class ClusterError(DevToolError):
    """The local cluster cannot be built, started or stopped."""


class ImageError(DevToolError):
    """An image cannot be built, saved or loaded."""


class LabelStudioError(DevToolError):
    """The local Label Studio cannot be installed, started or stopped."""
