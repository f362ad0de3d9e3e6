"""Peer (c): Ray Serve's standard ``@serve.batch`` deployment over torch.

Start: ``python -m bench.peers.ray_batch`` (a local Ray cluster on 127.0.0.1, Serve's proxy
on ``BENCH_PEER_PORT``; SIGTERM stops both).
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading

from shared.compat import use_local_ray_env

use_local_ray_env()  # before Ray is imported: a cluster on 127.0.0.1 only, no usage report

from ray import serve  # noqa: E402
from starlette.requests import Request  # noqa: E402

from bench.peers.peer_model import Item, PeerModel, peer_port  # noqa: E402


@serve.deployment(ray_actor_options={"num_cpus": os.cpu_count() or 1}, max_ongoing_requests=256)
class TorchClassifier:
    def __init__(self) -> None:
        from shared.compat import keep_replica_grpc_local

        keep_replica_grpc_local()  # this machine's rule, not a speed-up: listeners on 127.0.0.1 only
        self.peer = PeerModel()

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.01)
    async def classify(self, items: list[Item]) -> list[dict]:
        results = self.peer.classify([self.peer.text(item) for item in items])
        return [{"id": item.id, **result} for item, result in zip(items, results)]

    async def __call__(self, request: Request) -> list[dict]:
        body = await request.json()
        return await asyncio.gather(*(self.classify(Item(**raw)) for raw in body["items"]))


def main() -> None:
    import ray

    from shared.ray_local import start_ray
    from shared.ray_settings import ReplicaSettings

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    start_ray(ReplicaSettings(), "127.0.0.1", peer_port())
    try:
        serve.run(TorchClassifier.bind(), name="peer-ray", route_prefix="/predict")
        stop.wait()
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
