"""Entity extraction: token classification over overlapping windows, spans in characters.

The text is tokenized once, without truncation. Token sequences longer than the model's
window are cut into windows that overlap, each token is labelled by the window where it
has the most context on both sides, and tags are decoded into spans. A span always
covers whole words (the tokenizer's pre-tokens) and its ``start``/``end`` are character
offsets into the caller's string, so ``text[start:end] == span.text`` for any Unicode.

:class:`EntityTagger` holds the logic and takes the network as a function, so training
(torch, for dev scores) and serving (ONNX Runtime) decode in exactly the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from pathlib import Path

import numpy as np

from shared.errors import ModelError
from shared.runtime.model_folder import ONNX_FILE, ModelInfo, read_model_info
from shared.run_planner import length_runs
from shared.runtime.onnx_classifier import softmax, start_session
from shared.runtime.tagging import (SHAPE_SPECIAL, iob2_transitions, plan_windows, spans_from_tags, token_shapes,
                                    viterbi_path, window_owners)

__all__ = ["Entity", "EntityTagger", "OnnxEntityRecognizer", "RunLogits", "TaggerInput"]

logger = logging.getLogger(__name__)

# feeds (input_ids, attention_mask and, for models with case features, case_ids)
# -> logits of shape (batch, tokens, labels)
RunLogits = Callable[[dict[str, np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class Entity:
    """One entity found in a text: ``text == source[start:end]``."""

    type: str
    text: str
    start: int
    end: int
    score: float


@dataclass(frozen=True)
class Window:
    """Model input for one window of one text: token ids with [CLS]/[SEP] around them,
    and each token's word shape (0 for the special tokens)."""

    item: int
    start: int
    end: int
    ids: np.ndarray
    shapes: np.ndarray


@dataclass(frozen=True)
class TaggerInput:
    """One text as the network reads it: its encoding, its window plan and the windows' inputs."""

    text: str
    encoding: Any
    plan: tuple[tuple[int, int], ...]
    windows: tuple[Window, ...]

    @property
    def rows(self) -> int:
        """Rows it takes in a run: one per window."""
        return len(self.windows)

    @property
    def width(self) -> int:
        """Tokens of its longest window, [CLS] and [SEP] included."""
        return max((len(w.ids) for w in self.windows), default=2)


class EntityTagger:
    """Tokenize, window, run the network, decode entities.

    Args:
        tokenizer (`tokenizers.Tokenizer`): the model's fast tokenizer.
        labels (`Sequence[str]`): IOB2 tags in logit order.
        max_length (`int`): model window in tokens, [CLS] and [SEP] included.
        overlap (`int | None`): tokens shared by consecutive windows (default: a quarter window).
        case_features (`bool`, defaults to `False`): feed each token's word shape as ``case_ids``.
        constrained (`bool`, defaults to `True`): decode the most probable valid IOB2 sequence
            (Viterbi) instead of each token's most probable tag.
    """

    def __init__(self, tokenizer, labels: Sequence[str], max_length: int, overlap: int | None = None,
                 case_features: bool = False, constrained: bool = True) -> None:
        self.case_features = case_features
        self.constrained = constrained
        self.tokenizer = tokenizer
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.labels = list(labels)
        self._start, self._allowed = iob2_transitions(self.labels)
        self.size = max_length - 2
        self.overlap = self.size // 4 if overlap is None else overlap
        self.cls_id = tokenizer.token_to_id("[CLS]")
        self.sep_id = tokenizer.token_to_id("[SEP]")
        if self.cls_id is None or self.sep_id is None:
            raise ModelError("the tokenizer has no [CLS]/[SEP] tokens; only BERT-family encoders are supported")

    def encode(self, text: str):
        """Subword encoding of ``text`` without special tokens (ids, char offsets, word ids)."""
        return self.tokenizer.encode(text, add_special_tokens=False)

    def windows(self, n_tokens: int) -> list[tuple[int, int]]:
        return plan_windows(n_tokens, self.size, self.overlap)

    def wrap(self, ids: Sequence[int]) -> np.ndarray:
        return np.array([self.cls_id, *ids, self.sep_id], dtype=np.int64)

    @staticmethod
    def wrap_shapes(shapes: Sequence[int]) -> np.ndarray:
        return np.array([SHAPE_SPECIAL, *shapes, SHAPE_SPECIAL], dtype=np.int64)

    def feeds(self, ids: Sequence[np.ndarray], shapes: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """Padded model inputs for a batch of wrapped windows."""
        width = max(len(w) for w in ids)
        feeds = {"input_ids": np.zeros((len(ids), width), dtype=np.int64)}
        feeds["attention_mask"] = np.zeros_like(feeds["input_ids"])
        if self.case_features:
            feeds["case_ids"] = np.zeros_like(feeds["input_ids"])
        for row, window_ids in enumerate(ids):
            feeds["input_ids"][row, : len(window_ids)] = window_ids
            feeds["attention_mask"][row, : len(window_ids)] = 1
            if self.case_features:
                feeds["case_ids"][row, : len(window_ids)] = shapes[row]
        return feeds

    def prepare(self, texts: Sequence[str]) -> list[TaggerInput]:
        """Each text encoded once (the tokenizer's batch call, which releases the GIL) and cut into windows."""
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=False) if texts else []
        return [self._windowed(text, enc) for text, enc in zip(texts, encodings)]

    def _windowed(self, text: str, encoding) -> TaggerInput:
        plan = self.windows(len(encoding.ids))
        shapes = token_shapes(text, encoding.offsets, encoding.word_ids)
        windows = tuple(Window(0, s, e, self.wrap(encoding.ids[s:e]), self.wrap_shapes(shapes[s:e]))
                        for s, e in plan if e > s)
        return TaggerInput(text, encoding, tuple(plan), windows)

    def token_probs(self, texts: Sequence[str], encodings: Sequence, run: RunLogits,
                    batch_size: int, batch_tokens: int | None = None) -> list[np.ndarray]:
        """Per-token tag probabilities of each encoding, shape (tokens, labels), windows merged."""
        inputs = [self._windowed(text, enc) for text, enc in zip(texts, encodings)]
        return self.input_probs(inputs, run, batch_size, batch_tokens)

    def input_probs(self, inputs: Sequence[TaggerInput], run: RunLogits, batch_size: int,
                    batch_tokens: int | None = None) -> list[np.ndarray]:
        """Per-token tag probabilities of each prepared text, windows merged.

        Windows of similar length share a run (``length_runs``): at most ``batch_size`` windows
        and ``batch_tokens`` padded tokens each; texts the planner put in one run within the
        same bounds (rows: windows) run as one.
        """
        windows = [(item, w) for item, given in enumerate(inputs) for w in given.windows]
        window_probs: dict[tuple[int, int], np.ndarray] = {}
        for indices in length_runs([len(w.ids) for _, w in windows], batch_size, batch_tokens):
            chunk = [windows[i] for i in indices]
            feeds = self.feeds([w.ids for _, w in chunk], [w.shapes for _, w in chunk])
            logits = np.asarray(run(feeds), dtype=np.float32)
            for row, (item, w) in enumerate(chunk):
                window_probs[(item, w.start)] = softmax(logits[row, 1 : len(w.ids) - 1])
        merged = []
        for item, given in enumerate(inputs):
            probs = np.zeros((len(given.encoding.ids), len(self.labels)), dtype=np.float32)
            for i, owner in enumerate(window_owners(list(given.plan), len(given.encoding.ids))):
                start = given.plan[owner][0]
                probs[i] = window_probs[(item, start)][i - start]
            merged.append(probs)
        return merged

    def entities_of(self, inputs: Sequence[TaggerInput], run: RunLogits, batch_size: int = 32,
                    batch_tokens: int | None = None) -> list[list[Entity]]:
        """Entities of each prepared text (:meth:`prepare`), in order."""
        probs = self.input_probs(inputs, run, batch_size, batch_tokens)
        return [self.decode(given.text, given.encoding, p) for given, p in zip(inputs, probs)]

    def decode(self, text: str, encoding, probs: np.ndarray) -> list[Entity]:
        """Entities of one text from its per-token probabilities, snapped to whole words."""
        if not len(probs):
            return []
        best = viterbi_path(probs, self._start, self._allowed) if self.constrained else probs.argmax(axis=1)
        confidence = probs[np.arange(len(probs)), best]
        tags = [self.labels[i] for i in best]
        words = encoding.word_ids
        first_of_word: dict[int, int] = {}
        last_of_word: dict[int, int] = {}
        for i, word in enumerate(words):
            first_of_word.setdefault(word, i)
            last_of_word[word] = i
        entities: list[Entity] = []
        covered_until = -1
        for kind, a, b in spans_from_tags(tags):
            first = first_of_word[words[a]]
            last = last_of_word[words[b - 1]]
            if first <= covered_until:  # a word split between two predictions: the first one keeps it
                continue
            start, end = encoding.offsets[first][0], encoding.offsets[last][1]
            entities.append(Entity(type=kind, text=text[start:end], start=start, end=end,
                                   score=round(float(confidence[a:b].mean()), 6)))
            covered_until = last
        return entities

    def predict(self, texts: Sequence[str], run: RunLogits, batch_size: int = 32,
                batch_tokens: int | None = None) -> list[list[Entity]]:
        """Entities of each text, in input order."""
        return self.entities_of(self.prepare(texts), run, batch_size, batch_tokens)


class OnnxEntityRecognizer:
    """A token-classification model folder loaded into ONNX Runtime.

    Args:
        model_dir (`str | Path`): folder written by ``slm train entities``.
        intra_op_threads (`int`, defaults to `0`): ONNX Runtime threads; 0 lets ORT decide.
        max_batch_size (`int`, defaults to `64`): most windows per ONNX call.
        onnx_file (`str`, defaults to `"model.onnx"`): graph to load (the int8 one unless told otherwise).
        max_batch_tokens (`int | None`, defaults to `None`): most padded tokens per ONNX call.
        info (`ModelInfo | None`, defaults to `None`): the folder's description, when the caller
            holds it already (training, before ``slm_model.json`` is written); read from the folder otherwise.
    """

    def __init__(self, model_dir: str | Path, intra_op_threads: int = 0, max_batch_size: int = 64,
                 onnx_file: str = ONNX_FILE, max_batch_tokens: int | None = None,
                 info: ModelInfo | None = None) -> None:
        from tokenizers import Tokenizer

        self.model_dir = Path(model_dir)
        self.info: ModelInfo = info or read_model_info(self.model_dir, graph=onnx_file)
        self.labels = list(self.info.labels)
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.session = start_session(self.model_dir / onnx_file, intra_op_threads)
        inputs = {i.name for i in self.session.get_inputs()}
        self._wants_token_types = "token_type_ids" in inputs
        # The graph says whether the model was trained with word-shape features.
        self.tagger = EntityTagger(Tokenizer.from_file(str(self.model_dir / "tokenizer.json")), self.labels,
                                   self.info.max_length, case_features="case_ids" in inputs)

    @property
    def model_id(self) -> str:
        return self.info.model_id

    def graph_feeds(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The tagger's feeds plus what this graph also takes (``token_type_ids``)."""
        if self._wants_token_types:
            feeds = {**feeds, "token_type_ids": np.zeros_like(feeds["input_ids"])}
        return feeds

    def run_logits(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        (logits,) = self.session.run(["logits"], self.graph_feeds(feeds))
        return logits

    def encode(self, texts: Sequence[str]) -> list[TaggerInput]:
        """Each text tokenized and windowed once: what :meth:`entities_of` runs."""
        return self.tagger.prepare(texts)

    def entities_of(self, inputs: Sequence[TaggerInput]) -> list[list[Entity]]:
        """Entities of encoded texts, cut into runs of windows within this model's bounds."""
        return self.tagger.entities_of(inputs, self.run_logits, self.max_batch_size, self.max_batch_tokens)

    def predict(self, texts: Sequence[str]) -> list[list[Entity]]:
        return self.entities_of(self.encode(texts))
