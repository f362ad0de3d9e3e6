"""Train, export and evaluate the entities task (token classification) end to end.

``train_entities`` is what ``slm train entities`` runs: read the CoNLL files (any tag set,
IO or IOB2), fine-tune the encoder on IOB2 tags over the same windows the service uses,
export ONNX int8, check int8 against fp32, pick the review threshold on dev, evaluate on
the test file and write the model folder with its card.

Scores are entity-level micro P/R/F1 over exact spans (seqeval's default). Predictions
go through the serving path: the sentence's tokens joined by spaces are the text, and
the character spans the service returns are mapped back to token spans.
"""

from __future__ import annotations

import bisect
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from pipelines.common.args import TrainingArgs
from pipelines.common.base_model import BASE_MODEL_NAME, base_model_path, force_offline
from pipelines.common.card import write_card
from pipelines.common.token_files import Sentence, read_conll, tag_scheme
from pipelines.common.export import FP32_FILE, cpu_quantization_preset, export_fp32
from pipelines.common.metrics import entity_metrics
from pipelines.common.quantize import choose_served_graph
from pipelines.common.model_output import (building, code_provenance, data_provenance, evaluation_card_dir,
                                           pick_review_threshold, recorded_path, subsample)
from pipelines.common.training import TrainedModel, fine_tune, seed_everything
from shared.errors import DataError, ModelError
from shared.runtime import Entity, ModelInfo, OnnxEntityRecognizer, read_model_info, write_model_info
from shared.runtime.onnx_token_classifier import EntityTagger, RunLogits
from shared.runtime.tagging import OUTSIDE, Span, iob2_tags, token_shapes

__all__ = ["CALIBRATION_SENTENCES", "calibration_batches", "entity_labels", "evaluate_entities", "predicted_spans",
           "sentence_text", "split_dev_sentences", "train_entities", "window_examples"]

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


def split_dev_sentences(sentences: list[Sentence], fraction: float, seed: int) -> tuple[list[Sentence], list[Sentence]]:
    shuffled = sentences[:]
    random.Random(seed).shuffle(shuffled)
    n_dev = max(1, int(round(len(shuffled) * fraction)))
    return shuffled[n_dev:], shuffled[:n_dev]


def train_entities(
    task: str,
    train_file: Path,
    out_dir: Path,
    args: TrainingArgs,
    *,
    eval_file: Path | None = None,
    dev_file: Path | None = None,
    model_name: str | None = None,
) -> ModelInfo:
    """Fine-tune, export and evaluate; returns the :class:`ModelInfo` written to ``out_dir``."""
    started = time.perf_counter()
    train = read_conll(train_file, args.context_words)
    if dev_file is not None:
        dev = read_conll(dev_file, args.context_words)
    else:
        if len(train) < 10:
            raise DataError(f"{train_file}: {len(train)} sentences are too few to carve out a dev split; "
                            "pass a dev file")
        train, dev = split_dev_sentences(train, args.dev_fraction, args.seed)
    test = read_conll(eval_file, args.context_words) if eval_file else []
    train = subsample(train, args.max_train_examples, args.seed)
    dev = subsample(dev, args.max_dev_examples, args.seed)
    test = subsample(test, args.max_test_examples, args.seed)
    types = set().union(*(s.types for s in train))
    if not types:
        raise DataError(f"{train_file}: no entities in the training data (every tag is O)")
    labels = entity_labels(types)
    logger.info("task=%s train=%d dev=%d test=%d types=%s", task, len(train), len(dev), len(test), sorted(types))
    provenance = {
        "base_model": BASE_MODEL_NAME,
        "code": code_provenance(),
        "args": args.to_dict(),
        "entity_types": sorted(types),
        "tag_scheme_in_files": _file_schemes(train_file, eval_file, dev_file),
        "data": data_provenance(train_file, len(train), dev_file, len(dev), eval_file),
    }
    info = ModelInfo(task=task, name=model_name or f"{task}-minilm-l6",
                     version=datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ"), labels=labels,
                     review_threshold=0.5, max_length=args.max_length, training=provenance, kind="entities")
    with building(out_dir) as build_dir:
        _build_model(build_dir, info, train, dev, test, args)
        info.training["total_seconds"] = round(time.perf_counter() - started, 1)
        write_model_info(build_dir, info)
    return info


def _file_schemes(*paths: Path | None) -> dict[str, str]:
    """IO or IOB2, per input file (as read from its raw tags)."""
    from pipelines.common.data import open_text

    schemes = {}
    for path in paths:
        if path is None:
            continue
        with open_text(Path(path)) as handle:
            tags = {line.split()[-1] for line in handle if line.split() and not line.startswith("-DOCSTART-")}
        schemes[Path(path).name] = tag_scheme(tags)
    return schemes


def _build_model(out_dir: Path, info: ModelInfo, train: list[Sentence], dev: list[Sentence], test: list[Sentence],
                 args: TrainingArgs) -> None:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="slm-train-") as tmp:
        trained = train_tagger(train, dev, info.labels, args, Path(tmp) / "checkpoint")
        export_fp32(trained.checkpoint_dir, out_dir, onnx_task="token-classification")
    info.training.update({
        "best_epoch": trained.best_epoch,
        "history": trained.history,
        "train_seconds": round(trained.train_seconds, 1),
    })
    _quantize(out_dir, info, train, dev, args)
    _evaluate_and_describe(out_dir, info, dev, test)


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


def _quantize(out_dir: Path, info: ModelInfo, train: list[Sentence], dev: list[Sentence], args: TrainingArgs) -> None:
    """``model.onnx``: static int8 calibrated on training windows, or the next rung that keeps
    the fp32 model's entities on dev (:func:`pipelines.common.quantize.choose_served_graph`)."""
    write_model_info(out_dir, info)  # the runtime reads it: a provisional one for the candidates
    fp32 = OnnxEntityRecognizer(out_dir, onnx_file=FP32_FILE)
    dev_fp32, _ = predicted_spans(fp32.tagger, dev, fp32.run_logits)
    calibration_sentences = subsample(train, CALIBRATION_SENTENCES, args.seed)

    def agrees(graph: Path) -> float:
        candidate = OnnxEntityRecognizer(out_dir, onnx_file=str(graph))
        return _entity_agreement(dev_fp32, predicted_spans(candidate.tagger, dev, candidate.run_logits)[0])

    served = choose_served_graph(out_dir, calibration_batches(fp32, calibration_sentences), agrees,
                                 args.int8_min_agreement, require_int8=args.require_int8)
    info.precision = served.precision
    info.training["quantization"] = {**served.to_dict(), "calibration_sentences": len(calibration_sentences),
                                     "dynamic_preset": cpu_quantization_preset()}


def _entity_agreement(reference: list[list[Span]], candidate: list[list[Span]]) -> float:
    """Entity F1 of ``candidate`` taking ``reference`` as gold: 1.0 when both find the same entities."""
    if not any(reference) and not any(candidate):
        return 1.0
    return entity_metrics(reference, candidate)["f1"]


def _evaluate_and_describe(out_dir: Path, info: ModelInfo, dev: list[Sentence], test: list[Sentence]) -> None:
    """Review threshold on dev entities, metrics of the served and the fp32 graph, the card."""
    write_model_info(out_dir, info)
    served = OnnxEntityRecognizer(out_dir)
    fp32 = OnnxEntityRecognizer(out_dir, onnx_file=FP32_FILE)
    gold_dev = [list(s.spans) for s in dev]
    dev_served, dev_entities = predicted_spans(served.tagger, dev, served.run_logits)
    dev_fp32, _ = predicted_spans(fp32.tagger, dev, fp32.run_logits)
    scores, correct = [], []
    for gold, spans, entities in zip(gold_dev, dev_served, dev_entities):
        for span, entity in zip(spans, entities):
            scores.append(entity.score)
            correct.append(span in gold)
    info.review_threshold = pick_review_threshold(np.array(scores), np.array(correct, dtype=bool))
    info.metrics = {"dev": {"served": entity_metrics(gold_dev, dev_served), "fp32": entity_metrics(gold_dev, dev_fp32),
                            "agreement_with_fp32": _entity_agreement(dev_fp32, dev_served)}}
    if test:
        gold_test = [list(s.spans) for s in test]
        info.metrics["test"] = {
            "served": entity_metrics(gold_test, predicted_spans(served.tagger, test, served.run_logits)[0]),
            "fp32": entity_metrics(gold_test, predicted_spans(fp32.tagger, test, fp32.run_logits)[0]),
        }
    headline = info.metrics.get("test", info.metrics["dev"])["served"]
    write_card(out_dir / "card", title=f"{info.name} {info.version} ({info.precision})", metrics=headline,
               details={"model": info.model_id, "precision": info.precision, "labels": info.labels,
                        "review_threshold": info.review_threshold, **info.training})


def evaluate_entities(model_dir: Path, data_file: Path, *, card_dir: Path | None = None) -> dict:
    """Entity-level micro P/R/F1 of the int8 model on a CoNLL file; writes a card."""
    from pipelines.common.model_output import file_sha256

    info = read_model_info(model_dir)
    if info.kind != "entities":
        raise ModelError(f"{model_dir} holds a {info.kind} model, not an entities model")
    sentences = read_conll(data_file, info.training.get("args", {}).get("context_words", 0))
    model = OnnxEntityRecognizer(model_dir)
    started = time.perf_counter()
    spans, _ = predicted_spans(model.tagger, sentences, model.run_logits)
    metrics = entity_metrics([list(s.spans) for s in sentences], spans)
    metrics["seconds"] = round(time.perf_counter() - started, 1)
    unknown = sorted(set().union(*(s.types for s in sentences)) - set(info.training.get("entity_types", [])))
    if unknown:
        metrics["types_unknown_to_model"] = unknown
    metrics["model"] = info.model_id
    metrics["data"] = {"file": recorded_path(data_file), "sha256": file_sha256(Path(data_file))}
    card_dir = card_dir or evaluation_card_dir(info, data_file)
    write_card(card_dir, title=f"{info.model_id} on {Path(data_file).name}", metrics=metrics,
               details={"model": info.model_id, "data": metrics["data"]})
    metrics["card"] = str(card_dir / "card.md")
    return metrics
