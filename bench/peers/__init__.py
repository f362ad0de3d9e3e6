"""The peers: what a team would otherwise run for the same fine-tuned model on the same machine.

Each is a standalone server in the style its framework documents, loading the torch
checkpoint rebuilt from the model folder (``bench.torch_checkpoint``), in fp32 (fp16 on a
GPU), answering ``POST /predict`` with the services' request body (``{"items": [...]}``), so
one load generator drives them all:

- ``fastapi``: FastAPI and a transformers ``pipeline``, one request at a time;
- ``bentoml``: a BentoML service with adaptive batching (``batchable=True``) over torch;
- ``ray``: a Ray Serve deployment whose method is wrapped in ``@serve.batch``.

Settings come from the environment (``BENCH_PEER_CHECKPOINT``, ``BENCH_PEER_MODEL_DIR``,
``BENCH_PEER_PORT``), so the same variables work for ``bentoml serve`` and ``python -m``.
"""

from __future__ import annotations

import sys

__all__ = ["PEERS", "peer_command"]

PEERS = ("fastapi", "bentoml", "ray")


def peer_command(name: str, port: int) -> list[str]:
    """The command line that starts one peer on 127.0.0.1:``port`` (also given as ``BENCH_PEER_PORT``)."""
    commands = {
        "fastapi": [sys.executable, "-m", "bench.peers.fastapi_pipeline"],
        "bentoml": [sys.executable, "-m", "bentoml", "serve", "bench.peers.bentoml_torch:TorchClassifier",
                    "--host", "127.0.0.1", "--port", str(port)],
        "ray": [sys.executable, "-m", "bench.peers.ray_batch"],
    }
    if name not in commands:
        raise ValueError(f"unknown peer {name!r}; one of {PEERS}")
    return commands[name]
