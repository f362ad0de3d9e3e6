"""Peer (b): BentoML's standard torch service with adaptive batching.

Start: ``bentoml serve bench.peers.bentoml_torch:TorchClassifier --host 127.0.0.1 --port P``.
"""

from __future__ import annotations

import bentoml

from bench.peers.peer_model import Item, PeerModel


@bentoml.service(workers=1, traffic={"timeout": 30})
class TorchClassifier:
    def __init__(self) -> None:
        self.peer = PeerModel()

    @bentoml.api(route="/predict", batchable=True, max_batch_size=64, max_latency_ms=5000)
    def predict(self, items: list[Item]) -> list[dict]:
        results = self.peer.classify([self.peer.text(item) for item in items])
        return [{"id": item.id, **result} for item, result in zip(items, results)]
