"""Peer (a), what a team writes first: FastAPI and a transformers ``pipeline``, one request at a time.

The endpoint is ``async`` and calls the pipeline directly, so requests run one after another
on the event loop, each as its own batch. Start: ``python -m bench.peers.fastapi_pipeline``.
"""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel, Field
from transformers import pipeline

from bench.peers.peer_model import Item, PeerModel, peer_port

peer = PeerModel()
classifier = pipeline("text-classification", model=peer.model, tokenizer=peer.tokenizer, device=peer.model.device)
app = FastAPI(title="peer-fastapi-pipeline")


class Body(BaseModel):
    items: list[Item] = Field(min_length=1)


@app.post("/predict")
async def predict(body: Body) -> list[dict]:
    outputs = classifier([peer.text(item) for item in body.items], truncation=True, max_length=peer.max_length)
    return [{"id": item.id, **out} for item, out in zip(body.items, outputs)]


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=peer_port(), log_level="warning")
