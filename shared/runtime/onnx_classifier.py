"""Sequence classification with ONNX Runtime: tokenize, run, softmax, label.

The hot path is numpy only: the fast Rust tokenizer pads each batch to its own longest
item (dynamic padding), and inputs are sorted by length so that a batch of mixed
lengths wastes little compute.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared.run_planner import length_runs
from shared.runtime.int8_weights import session_graph
from shared.runtime.model_folder import ONNX_FILE, ModelInfo, read_model_info

__all__ = ["OnnxTextClassifier", "Prediction", "softmax", "start_session"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    """One classified item: the top label, its probability and the full distribution."""

    label: str
    score: float
    scores: dict[str, float]
    review: bool

    def top(self, k: int) -> list[tuple[str, float]]:
        return sorted(self.scores.items(), key=lambda kv: kv[1], reverse=True)[:k]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def start_session(onnx_path: Path, intra_op_threads: int = 0, spinning: bool = False):
    """An ONNX Runtime CPU session: ``intra_op_threads`` for the matrix work, one inter-op thread.

    The graph runs its nodes one after another (sequential execution, one inter-op thread): an
    encoder is a chain, and a second pool would only compete for the same cores.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle intra-op threads sleep instead of spinning (``spinning=False``): a service shares its cores
    # with the HTTP event loop, the tokenizer thread and the Kafka threads, which a spinning pool
    # starves. Measured on 2 cores in docs/performance.md, "Batching and threads".
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    # Signed int8 weights where this CPU multiplies them exactly, else unsigned: the same answers (int8_weights).
    return ort.InferenceSession(session_graph(Path(onnx_path)), options, providers=["CPUExecutionProvider"])


class OnnxTextClassifier:
    """A model folder loaded for inference.

    Args:
        model_dir (`str | Path`): folder written by ``slm train``.
        intra_op_threads (`int`, defaults to `0`): ONNX Runtime threads; 0 lets ORT decide.
        max_batch_size (`int`, defaults to `64`): most texts in one ONNX Runtime run.
        onnx_file (`str`, defaults to `"model.onnx"`): graph to load (the int8 one unless told otherwise).
        max_batch_tokens (`int | None`, defaults to `None`): most padded tokens in one run (texts
            x the longest text's tokens); ``None`` bounds runs by ``max_batch_size`` alone.
        info (`ModelInfo | None`, defaults to `None`): the folder's description, when the caller
            holds it already (training, before ``slm_model.json`` is written); read from the folder otherwise.
    """

    def __init__(
        self,
        model_dir: str | Path,
        intra_op_threads: int = 0,
        max_batch_size: int = 64,
        onnx_file: str = ONNX_FILE,
        max_batch_tokens: int | None = None,
        info: ModelInfo | None = None,
    ) -> None:
        from tokenizers import Tokenizer

        self.model_dir = Path(model_dir)
        self.info: ModelInfo = info or read_model_info(self.model_dir, graph=onnx_file)
        self.labels = list(self.info.labels)
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=self.info.max_length)
        self.tokenizer.no_padding()
        self.session = start_session(self.model_dir / onnx_file, intra_op_threads)
        self._input_names = {i.name for i in self.session.get_inputs()}

    @property
    def model_id(self) -> str:
        return self.info.model_id

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, truncated to the model's length: what :meth:`probabilities` runs.

        The tokenizer's batch call releases the GIL, so one thread can encode what comes next
        while another runs the model.
        """
        return [e.ids for e in self.tokenizer.encode_batch(list(texts))] if texts else []

    def feeds(self, encodings: Sequence) -> dict[str, np.ndarray]:
        """ONNX Runtime inputs for tokenizer encodings, padded to the longest."""
        return self.feeds_of([e.ids for e in encodings])

    def feeds_of(self, ids: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
        """ONNX Runtime inputs for token id rows, padded to the longest."""
        width = max(len(row) for row in ids)
        input_ids = np.zeros((len(ids), width), dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for k, row in enumerate(ids):
            input_ids[k, : len(row)] = row
            mask[k, : len(row)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        return feeds

    def _chunks(self, lengths: Sequence[int]) -> list[np.ndarray]:
        return length_runs(lengths, self.max_batch_size, self.max_batch_tokens)

    def probabilities(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        """Class probabilities of encoded texts (:meth:`encode`), shape (len(ids), len(labels)), in order.

        What it is handed is cut into length-sorted runs within this model's bounds; a run the
        planner already cut within them (:mod:`shared.run_planner`) runs as it is.
        """
        probs = np.empty((len(ids), len(self.labels)), dtype=np.float32)
        for chunk in self._chunks([len(row) for row in ids]):
            (logits,) = self.session.run(["logits"], self.feeds_of([ids[i] for i in chunk]))
            probs[chunk] = softmax(logits.astype(np.float32))
        return probs

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities, shape (len(texts), len(labels)), in input order."""
        return self.probabilities(self.encode(texts))

    def predictions(self, probs: np.ndarray, threshold: float | None = None) -> list[Prediction]:
        """Top label, score and distribution of each row of ``probs``; ``review`` when under the threshold."""
        threshold = self.info.review_threshold if threshold is None else threshold
        results = []
        for row in probs:
            best = int(row.argmax())
            score = float(row[best])
            results.append(Prediction(label=self.labels[best], score=score,
                                      scores={label: float(p) for label, p in zip(self.labels, row)},
                                      review=score < threshold))
        return results

    def predict(self, texts: Sequence[str], threshold: float | None = None) -> list[Prediction]:
        """Top label, score and distribution for each text; ``review`` when under the threshold."""
        return self.predictions(self.predict_proba(texts), threshold)
