"""The one error of image building."""

from __future__ import annotations

from shared.errors import SlmError

__all__ = ["ImageError"]


class ImageError(SlmError):
    """An image cannot be built, saved or loaded (the CLI prints it as one line)."""
