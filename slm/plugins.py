"""Commands that plug into ``slm`` through an entry point group (the developer tools' groups)."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

__all__ = ["plugins"]

log = logging.getLogger(__name__)


def plugins(group: str) -> list:
    """What each installed entry point of ``group`` names; one whose module is not installed is left out."""
    found = []
    for entry in entry_points(group=group):
        try:
            found.append(entry.load())
        except ModuleNotFoundError as exc:
            # Only the plug-in's own package missing (a serving image has no devtools) is expected.
            if not exc.name or not (entry.module == exc.name or entry.module.startswith(exc.name + ".")):
                raise
            log.debug("plug-in %s=%s left out: %s is not installed", entry.name, entry.value, exc.name)
    return found
