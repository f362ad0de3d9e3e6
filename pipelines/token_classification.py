"""Entity extraction (token classification) as a kind of the recipe (:mod:`pipelines.recipe`).

The kind's data reader is a CoNLL file (any tag set, IO or IOB2); its head tags every subword
with IOB2 tags over the same windows the service uses (:class:`pipelines.common.modeling.CasedTokenClassifier`);
its metrics are entity-level micro P/R/F1 over exact spans (seqeval's default); its decoder is
the service's: the sentence's tokens joined by spaces are the text, and the character spans the
service returns are mapped back to token spans.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.common.args import TrainingArgs
from pipelines.common.base_model import base_model_path, force_offline
from pipelines.common.data import ColumnChoice, open_text
from pipelines.common.metrics import entity_metrics
from pipelines.common.model_output import file_sha256, recorded_path
from pipelines.common.scores import EntityScores, Evaluation
from pipelines.common.token_files import Sentence, read_conll, tag_scheme
from pipelines.common.training import TrainedModel, fine_tune, seed_everything
from pipelines.recipe import TrainingData
from shared.errors import ConfigError, DataError
from shared.runtime import Entity, ModelInfo, OnnxEntityRecognizer
from shared.runtime.onnx_token_classifier import EntityTagger, RunLogits
from shared.runtime.tagging import OUTSIDE, Span, iob2_tags, token_shapes
from shared.task_kinds import ENTITIES

__all__ = ["CALIBRATION_SENTENCES", "EntityRecipe", "calibration_batches", "entity_labels", "predicted_spans",
           "sentence_text", "window_examples"]

logger = logging.getLogger(__name__)
IGNORE = -100  # label of [CLS]/[SEP]: no loss
# Training sentences whose windows calibrate static int8, fed in runs of this many windows.
CALIBRATION_SENTENCES = 256
CALIBRATION_BATCH = 16


def sentence_text(tokens: Sequence[str]) -> tuple[str, list[int]]:
    """The sentence as one string (tokens joined by spaces) and each token's start offset."""
    starts, position = [], 0
    for token in tokens:
        starts.append(position)
        position += len(token) + 1
    return " ".join(tokens), starts


def entity_labels(types: set[str]) -> list[str]:
    """IOB2 tags for ``types``: ``O`` first, then ``B-``/``I-`` per type, sorted."""
    return [OUTSIDE, *(f"{p}-{kind}" for kind in sorted(types) for p in ("B", "I"))]


@dataclass(frozen=True)
class WindowExample:
    ids: np.ndarray
    shapes: np.ndarray
    labels: np.ndarray


def _in_context(sentence: Sentence) -> tuple[list[str], int, int]:
    """The sentence's tokens with its context around them, and where the sentence sits."""
    tokens = [*sentence.left, *sentence.tokens, *sentence.right]
    return tokens, len(sentence.left), len(sentence.left) + len(sentence.tokens)


def window_examples(tagger: EntityTagger, sentence: Sentence, label_to_id: dict[str, int]) -> list[WindowExample]:
    """Training windows of one sentence in its context: every subword of the sentence gets a
    tag (a word's later pieces continue its entity), so the model learns to tag any text the
    service is given; context tokens are seen but not scored."""
    tokens, first, last = _in_context(sentence)
    text, starts = sentence_text(tokens)
    encoding = tagger.encode(text)
    shapes = token_shapes(text, encoding.offsets, encoding.word_ids)
    word_tags = iob2_tags([(kind, s + first, e + first) for kind, s, e in sentence.spans], len(tokens))
    token_labels = []
    previous_word = -1
    for start, _ in encoding.offsets:
        word = bisect.bisect_right(starts, start) - 1
        tag = word_tags[word]
        if word == previous_word and tag.startswith("B-"):
            tag = "I-" + tag[2:]
        scored = first <= word < last
        token_labels.append(label_to_id.get(tag, label_to_id[OUTSIDE]) if scored else IGNORE)
        previous_word = word
    examples = []
    for s, e in tagger.windows(len(encoding.ids)):
        labels = np.array([IGNORE, *token_labels[s:e], IGNORE], dtype=np.int64)
        if (labels != IGNORE).any():  # a window of context only teaches nothing
            examples.append(WindowExample(tagger.wrap(encoding.ids[s:e]), tagger.wrap_shapes(shapes[s:e]), labels))
    return examples


def predicted_spans(tagger: EntityTagger, sentences: Sequence[Sentence], run: RunLogits,
                    batch_size: int = 64) -> tuple[list[list[Span]], list[list[Entity]]]:
    """Token spans (for scoring) and the raw entities (for scores) of each sentence.

    Each sentence is tagged inside its context, and only entities within it are kept.
    """
    contexts = [_in_context(s) for s in sentences]
    texts = [sentence_text(tokens) for tokens, _, _ in contexts]
    found_all = tagger.predict([text for text, _ in texts], run, batch_size)
    spans, entities = [], []
    for (_, first, last), (_, starts), found in zip(contexts, texts, found_all):
        kept_spans, kept = [], []
        for entity in found:
            start = bisect.bisect_right(starts, entity.start) - 1
            end = bisect.bisect_right(starts, entity.end - 1)
            if first <= start and end <= last:
                kept_spans.append((entity.type, start - first, end - first))
                kept.append(entity)
        spans.append(kept_spans)
        entities.append(kept)
    return spans, entities


def _torch_runner(model) -> RunLogits:
    import torch

    def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            return model(**{name: torch.from_numpy(value) for name, value in feeds.items()}).logits.numpy()

    return run


def _tagger_for(hf_tokenizer, labels: Sequence[str], max_length: int) -> EntityTagger:
    from tokenizers import Tokenizer

    # A copy: the tagger turns truncation and padding off on the tokenizer it holds.
    return EntityTagger(Tokenizer.from_str(hf_tokenizer.backend_tokenizer.to_str()), labels, max_length,
                        case_features=True)


def train_tagger(train: Sequence[Sentence], dev: Sequence[Sentence], labels: Sequence[str], args: TrainingArgs,
                 out_dir: Path) -> TrainedModel:
    """Fine-tune the base encoder with a token-classification head; keep the best dev F1 epoch."""
    force_offline()
    import torch
    from transformers import AutoTokenizer

    from pipelines.common.modeling import CasedTokenClassifier

    seed_everything(args.seed)
    base = base_model_path()
    hf_tokenizer = AutoTokenizer.from_pretrained(base)
    label_to_id = {label: i for i, label in enumerate(labels)}
    model = CasedTokenClassifier.from_pretrained(
        base, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label_to_id)
    tagger = _tagger_for(hf_tokenizer, labels, args.max_length)
    examples = [w for sentence in train for w in window_examples(tagger, sentence, label_to_id)]
    gold_dev = [list(s.spans) for s in dev]
    run = _torch_runner(model)

    def make_batch(idx: np.ndarray) -> dict:
        batch = [examples[i] for i in idx]
        feeds = tagger.feeds([e.ids for e in batch], [e.shapes for e in batch])
        labels = np.full_like(feeds["input_ids"], IGNORE)
        for row, example in enumerate(batch):
            labels[row, : len(example.labels)] = example.labels
        return {**{name: torch.from_numpy(value) for name, value in feeds.items()}, "labels": torch.from_numpy(labels)}

    def dev_f1() -> float:
        return entity_metrics(gold_dev, predicted_spans(tagger, dev, run)[0])["f1"]

    return fine_tune(model, hf_tokenizer, [len(e.ids) for e in examples], make_batch, dev_f1, args, out_dir,
                     metric="dev_f1")


def _file_schemes(*paths: Path | None) -> dict[str, str]:
    """IO or IOB2, per input file (as read from its raw tags)."""
    schemes = {}
    for path in paths:
        if path is None:
            continue
        with open_text(Path(path)) as handle:
            tags = {line.split()[-1] for line in handle if line.split() and not line.startswith("-DOCSTART-")}
        schemes[Path(path).name] = tag_scheme(tags)
    return schemes


def calibration_batches(model: OnnxEntityRecognizer, sentences: Sequence[Sentence]) -> list[dict[str, np.ndarray]]:
    """Input batches of the windows the service would run for ``sentences`` (in their context)."""
    tagger = model.tagger
    ids, shapes = [], []
    for sentence in sentences:
        text, _ = sentence_text(_in_context(sentence)[0])
        encoding = tagger.encode(text)
        token_shape = token_shapes(text, encoding.offsets, encoding.word_ids)
        for s, e in tagger.windows(len(encoding.ids)):
            ids.append(tagger.wrap(encoding.ids[s:e]))
            shapes.append(tagger.wrap_shapes(token_shape[s:e]))
    return [model.graph_feeds(tagger.feeds(ids[i : i + CALIBRATION_BATCH], shapes[i : i + CALIBRATION_BATCH]))
            for i in range(0, len(ids), CALIBRATION_BATCH)]


def _entity_agreement(reference: list[list[Span]], candidate: list[list[Span]]) -> float:
    """Entity F1 of ``candidate`` taking ``reference`` as gold: 1.0 when both find the same entities."""
    if not any(reference) and not any(candidate):
        return 1.0
    return entity_metrics(reference, candidate)["f1"]


def _characters(sentence: Sentence) -> str:
    # Without the spaces between tokens: a verdict's span may cut a token of the training file in two
    # (``Acme,`` into ``Acme`` and ``,``), and the sentence is still the one the reviewer read.
    return "".join(sentence.tokens)


def _document_of(sentence: Sentence) -> int:
    return sentence.document


@dataclass(frozen=True)
class EntityRecipe:
    """Entity extraction's part of the recipe: CoNLL sentences in, entity spans out."""

    kind = ENTITIES
    scores = EntityScores
    stratify = None  # sentences have no one label: the dev split is a plain seeded shuffle
    same_input = staticmethod(_characters)
    document = staticmethod(_document_of)
    calibration_items = CALIBRATION_SENTENCES
    calibration_record = "calibration_sentences"
    unit = "sentences"
    min_items_to_split = 10

    @classmethod
    def for_training(cls, columns: ColumnChoice, *, baseline: bool, dataset=None) -> EntityRecipe:
        return cls._without_classification_options(columns, baseline)

    @classmethod
    def for_evaluation(cls, info: ModelInfo, columns: ColumnChoice, *, baseline: bool,
                       baseline_train: Path | None) -> EntityRecipe:
        return cls._without_classification_options(columns, baseline or baseline_train is not None)

    @classmethod
    def for_model(cls, info: ModelInfo) -> EntityRecipe:
        return cls()

    @classmethod
    def _without_classification_options(cls, columns: ColumnChoice, baseline: bool) -> EntityRecipe:
        if columns.given:
            raise ConfigError("entities reads CoNLL files (token first, tag last); --text-col, --label-col and "
                              "--field-cols are for the classification tasks")
        if baseline:
            raise ConfigError("--baseline is for the classification tasks")
        return cls()

    @staticmethod
    def request_rows(dataset, limit: int | None) -> tuple[list[dict], list[set[tuple[str, int, int]]]]:
        requests, gold = [], []
        for sentence in read_conll(dataset.test_file)[:limit]:
            text, starts = sentence_text(sentence.tokens)
            requests.append({"text": text})
            tokens = sentence.tokens
            gold.append({(kind, starts[s], starts[e - 1] + len(tokens[e - 1])) for kind, s, e in sentence.spans})
        return requests, gold

    @property
    def columns(self) -> dict:
        return {}

    def read(self, path: Path, args: TrainingArgs) -> list[Sentence]:
        return read_conll(path, args.context_words)

    def prepare(self, train: list[Sentence], dev: list[Sentence], test: list[Sentence],
                files: Sequence[Path | None]) -> TrainingData:
        types = set().union(*(s.types for s in train))
        if not types:
            raise DataError(f"{files[0]}: no entities in the training data (every tag is O)")
        return TrainingData(labels=entity_labels(types), train=train, dev=dev, test=test, as_read=(train, test),
                            record={"entity_types": sorted(types), "tag_scheme_in_files": _file_schemes(*files)})

    def fine_tune(self, data: TrainingData, args: TrainingArgs, checkpoint_dir: Path) -> TrainedModel:
        return train_tagger(data.train, data.dev, data.labels, args, checkpoint_dir)

    def predict(self, model: OnnxEntityRecognizer, items: Sequence[Sentence],
                desc: str) -> tuple[list[list[Span]], list[list[Entity]]]:
        return predicted_spans(model.tagger, items, model.run_logits)

    def agreement(self, reference, candidate) -> float:
        return _entity_agreement(reference[0], candidate[0])

    def calibration_batches(self, model: OnnxEntityRecognizer,
                            items: Sequence[Sentence]) -> list[dict[str, np.ndarray]]:
        return calibration_batches(model, items)

    def review_evidence(self, items: Sequence[Sentence], predictions,
                        labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        scores, correct = [], []
        for sentence, spans, entities in zip(items, *predictions):
            for span, entity in zip(spans, entities):
                scores.append(entity.score)
                correct.append(span in sentence.spans)
        return np.array(scores), np.array(correct, dtype=bool)

    def dev_scores(self, items: Sequence[Sentence], predictions, labels: Sequence[str]) -> EntityScores:
        return EntityScores.from_dict(entity_metrics([list(s.spans) for s in items], predictions[0]))

    test_scores = dev_scores

    def item_scores(self, model: OnnxEntityRecognizer, items: Sequence[Sentence]) -> np.ndarray:
        texts = [" ".join(s.tokens) for s in items]
        probs = model.tagger.token_probs(texts, [model.tagger.encode(t) for t in texts], model.run_logits,
                                         model.max_batch_size)
        return np.concatenate([p.ravel() for p in probs])

    def baseline(self, data: TrainingData, args: TrainingArgs) -> None:
        return None

    def evaluate(self, model_dir: Path, info: ModelInfo, data_file: Path) -> Evaluation:
        sentences = read_conll(data_file, info.training.get("args", {}).get("context_words", 0))
        model = OnnxEntityRecognizer(model_dir, info=info)
        started = time.perf_counter()
        spans, _ = predicted_spans(model.tagger, sentences, model.run_logits)
        scores = EntityScores.from_dict(entity_metrics([list(s.spans) for s in sentences], spans))
        unknown = sorted(set().union(*(s.types for s in sentences)) - set(info.training.get("entity_types", [])))
        return Evaluation(model_id=info.model_id,
                          data={"file": recorded_path(data_file), "sha256": file_sha256(data_file)},
                          scores=scores, seconds=round(time.perf_counter() - started, 1), unknown=unknown)
