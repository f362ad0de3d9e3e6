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

    def get_or_compute(self, keys: Sequence[Hashable], compute: Callable[[list[Hashable]], Sequence[V]]) -> list[V]:
        """The answer for each key, in order; ``compute`` runs once, on the distinct missing keys."""
        if self.capacity == 0:
            return list(compute(list(keys)))
        found: dict[Hashable, V] = {}
        with self._lock:
            for key in keys:
                if key in self._entries:
                    self._entries.move_to_end(key)
                    found[key] = self._entries[key]
        missing = list(dict.fromkeys(k for k in keys if k not in found))
        hits = len(keys) - len(missing)  # a key repeated within the batch is computed once: a hit
        if missing:
            found.update(zip(missing, compute(missing), strict=True))
            with self._lock:
                for key in missing:
                    self._entries[key] = found[key]
                    self._entries.move_to_end(key)
                while len(self._entries) > self.capacity:
                    self._entries.popitem(last=False)
        self.hits += hits
        self.misses += len(keys) - hits
        self._hit_counter.add(hits, self.attributes)
        self._miss_counter.add(len(keys) - hits, self.attributes)
        return [found[k] for k in keys]
