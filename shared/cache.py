"""A bounded response cache for repeated inputs: exact match, least recently used out first.

Streams repeat themselves (a card's merchant string, a news headline syndicated twice), and a
repeated input costs a dictionary lookup instead of a model run. The key is whatever the
model reads, so two requests share an answer only when the model would give them the same
one. REST and the Kafka thread share one cache, hence the lock.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

from opentelemetry import metrics

__all__ = ["ResultCache"]

V = TypeVar("V")


class ResultCache(Generic[V]):
    """At most ``capacity`` answers by key; ``capacity=0`` turns caching off.

    Args:
        capacity (`int`): entries kept; the least recently used goes first.
        task (`str`): task name for the ``slm.cache.hits`` / ``slm.cache.misses`` counters.
        model (`str`): model id, their other label.
        meter (`Meter`, defaults to the global provider's): where the counters are created.
    """

    def __init__(self, capacity: int, task: str, model: str = "unknown", meter: metrics.Meter | None = None) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        meter = meter or metrics.get_meter("slm.services")
        self.attributes = {"task": task, "model": model}
        self._hit_counter = meter.create_counter("slm.cache.hits", unit="{item}", description="Answers from the cache")
        self._miss_counter = meter.create_counter("slm.cache.misses", unit="{item}", description="Answers computed")

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def lookup(self, keys: Sequence[Hashable]) -> list[V | None]:
        """The kept answer of each key, or None; the answers found count as hits.

        With :meth:`remember` after the model ran, the two halves of :meth:`get_or_compute` for a
        batcher that tokenizes in one thread and runs the model in another.
        """
        if self.capacity == 0:
            return [None] * len(keys)
        with self._lock:
            found = [self._entries.get(key) for key in keys]
            for key, answer in zip(keys, found):
                if answer is not None:
                    self._entries.move_to_end(key)
        self._count(hits=sum(answer is not None for answer in found), misses=0)
        return found

    def remember(self, keys: Sequence[Hashable], answers: Sequence[V]) -> None:
        """Keep the computed ``answers``: each distinct key counts as a miss, a repeat of one as a hit."""
        if self.capacity == 0:
            return
        distinct = dict(zip(keys, answers, strict=True))
        with self._lock:
            for key, answer in distinct.items():
                self._entries[key] = answer
                self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        self._count(hits=len(keys) - len(distinct), misses=len(distinct))

    def _count(self, hits: int, misses: int) -> None:
        self.hits += hits
        self.misses += misses
        if hits:
            self._hit_counter.add(hits, self.attributes)
        if misses:
            self._miss_counter.add(misses, self.attributes)

    def get_or_compute(self, keys: Sequence[Hashable], compute: Callable[[list[Hashable]], Sequence[V]]) -> list[V]:
        """The answer for each key, in order; ``compute`` runs once, on the distinct missing keys."""
        if self.capacity == 0:
            return list(compute(list(keys)))
        found = dict(zip(keys, self.lookup(keys)))
        missing = [k for k in keys if found[k] is None]
        distinct = list(dict.fromkeys(missing))
        computed = dict(zip(distinct, compute(distinct), strict=True)) if distinct else {}
        self.remember(missing, [computed[k] for k in missing])
        return [computed[k] if found[k] is None else found[k] for k in keys]
