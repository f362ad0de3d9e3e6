"""The waits between retries of the review bridge: from half a second, doubling, up to a ceiling."""

from __future__ import annotations

__all__ = ["Backoff"]


class Backoff:
    """``next()`` gives the wait before the next attempt; ``reset()`` after one succeeded."""

    def __init__(self, ceiling_s: float, first_s: float = 0.5) -> None:
        self.ceiling_s = ceiling_s
        self.first_s = first_s
        self._wait = first_s

    def next(self) -> float:
        wait = min(self._wait, self.ceiling_s)
        self._wait = min(self._wait * 2, self.ceiling_s)
        return wait

    def reset(self) -> None:
        self._wait = self.first_s
