"""What the peers share: the request body, the fine-tuned torch model and its input text."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field

__all__ = ["Item", "PeerModel", "peer_port"]


class Item(BaseModel):
    """One request item, as the services take it (extra fields only matter to transactions)."""

    id: str
    text: str
    fields: dict = Field(default_factory=dict)


def peer_port() -> int:
    return int(os.environ.get("BENCH_PEER_PORT", "3200"))


class PeerModel:
    """The task's fine-tuned classifier in torch: fp32 on CPU, fp16 on a GPU when there is one.

    Args:
        checkpoint (`Path | None`): the torch folder (``bench.torch_checkpoint``); default
            ``BENCH_PEER_CHECKPOINT``.
        model_dir (`Path | None`): the model folder (input fields, token limit); default
            ``BENCH_PEER_MODEL_DIR``.
    """

    def __init__(self, checkpoint: Path | None = None, model_dir: Path | None = None) -> None:
        import torch
        from transformers import AutoTokenizer

        from pipelines.common.modeling import MeanPoolingClassifier
        from shared.runtime import read_model_info

        checkpoint = checkpoint or Path(os.environ["BENCH_PEER_CHECKPOINT"])
        info = read_model_info(model_dir or os.environ["BENCH_PEER_MODEL_DIR"])
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.float16 if self.device == "cuda" else torch.float32
        self.model = MeanPoolingClassifier.from_pretrained(checkpoint, dtype=dtype).to(self.device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        self.max_length = info.max_length
        self.fields = info.columns.get("fields", [])
        self.labels = [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]

    def text(self, item: Item) -> str:
        from shared.model_text import model_text

        return model_text(item.text, item.fields, self.fields)

    def classify(self, texts: list[str]) -> list[dict]:
        """Label and score per text: one padded batch, as the frameworks' examples do."""
        import torch

        encoded = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="pt").to(self.device)
        with torch.inference_mode():
            probs = self.model(**encoded).logits.float().softmax(-1)
        scores, best = probs.max(-1)
        return [{"label": self.labels[i], "score": s} for i, s in zip(best.tolist(), scores.tolist())]
