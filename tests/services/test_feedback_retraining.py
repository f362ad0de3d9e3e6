"""Review and feedback end to end on the real broker, for a classification task (sentiment) and for
entities: requests stream through the service, their review records carry the input, reviewers'
verdicts go to ``<task>.feedback``, ``slm feedback export`` joins them into a training file, and a model
retrained on it (``slm train --feedback``) answers the fed-back items with their corrected label, or
for entities with the reviewers' spans.

The fed-back items share a made-up company name, so that one short training can learn what the
reviewers said about them. For sentiment the corrected label is the one the first model gave them
least (never the training file's majority label), chosen at run time from its own answers; for
entities the reviewers mark the company an ORG, where the first model calls it a person or splits it.
The original training file holds some reviewed items again under the old label: the verdicts must
replace them, and the training says how many it replaced.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from pipelines.classification import rename_labels
from pipelines.common.data import read_examples
from pipelines.common.token_files import read_conll
from pipelines.tasks import dataset_for
from pipelines.token_classification import sentence_text
from shared.kafka import TaskTopics
from shared.processors import Received
from shared.runtime import read_model_info
from shared.runtime.tagging import iob2_tags
from shared.schemas import TaskRequestV1
from shared.task_kinds import load_processor
from tests.support.kafka_io import drain, produce
from tests.support.processes import REPO_ROOT, ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SLM = str(Path(sys.executable).with_name("slm"))

TEXTS = [
    "Zorblax Mining files its quarterly report",
    "Zorblax Mining names a new chief financial officer",
    "Zorblax Mining to hold its annual meeting in May",
    "Zorblax Mining opens an office in Toronto",
    "Zorblax Mining completes its share consolidation",
    "Zorblax Mining updates its drilling schedule",
    "Zorblax Mining signs a supply agreement",
    "Zorblax Mining publishes its sustainability review",
    "Zorblax Mining moves its listing to a new exchange",
    "Zorblax Mining confirms the date of its investor day",
    "Zorblax Mining appoints two directors",
    "Zorblax Mining restates its mine plan",
]


def _slm(*args: str, env: dict | None = None, timeout: int = 540) -> subprocess.CompletedProcess:
    return subprocess.run([SLM, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def _shipped_rows(rows: int) -> list[tuple[str, str]]:
    """The first ``rows`` (text, label) rows of the shipped sentiment training file, labels by name (as
    results carry them)."""
    dataset = dataset_for("sentiment")
    examples = rename_labels(read_examples(dataset.train_file, dataset.columns), dataset.label_names)[:rows]
    return [(e.text, e.label) for e in examples]


def _csv_file(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def _processed(task: str, model_dir: Path, texts: list[str]) -> list:
    """Results as a service serving ``model_dir`` gives them (the same processor)."""
    processor = load_processor(task, model_dir, intra_op_threads=1)
    return processor.process([Received.now(TaskRequestV1(text=t)) for t in texts])


def _answers(model_dir: Path, texts: list[str]) -> list[str]:
    return [r.label for r in _processed("sentiment", model_dir, texts)]


def _reviewed(task: str, model_dir: Path, ids: list[str], texts: list[str], kafka_bootstrap: str, topic_prefix: str,
              log_path: Path) -> dict[str, dict]:
    """Each request's review record, by id, from ``slm serve`` with every answer sent to review."""
    topics = TaskTopics(task, topic_prefix)
    # Threshold 1: every answer goes to review (for entities, every answer with an entity), so each
    # request has a review record to answer.
    env = {"SLM_KAFKA_BOOTSTRAP": kafka_bootstrap, "SLM_KAFKA_TOPIC_PREFIX": topic_prefix,
           "SLM_KAFKA_GROUP_ID": f"{topic_prefix}slm-{task}", "SLM_REVIEW_THRESHOLD": "1.0"}
    service = ServiceProcess(task, model_dir, log_path, env=env).wait_ready()
    try:
        produce(kafka_bootstrap, topics.requests,
                [(i.encode(), json.dumps({"id": i, "text": t}).encode(), []) for i, t in zip(ids, texts)])
        review = drain(kafka_bootstrap, topics.review,
                       until=lambda records: {json.loads(r.value)["id"] for r in records} >= set(ids))
        log = service.log()
    finally:
        assert service.terminate() == 0
    reviewed = {json.loads(r.value)["id"]: json.loads(r.value) for r in review}
    assert set(reviewed) == set(ids)
    for item_id, text in zip(ids, texts):
        assert reviewed[item_id]["input"] == {"text": text, "fields": {}}
        assert {"id", "review", "model"} <= set(reviewed[item_id])
    assert "Zorblax" not in log, "input text must never reach the service's log"
    return reviewed


def test_feedback_on_review_records_retrains_the_model_to_the_corrected_labels(quick_model_dir, tmp_path,
                                                                             kafka_bootstrap, topic_prefix):
    topics = TaskTopics("sentiment", topic_prefix)
    ids = [f"{topic_prefix}item-{i}" for i in range(len(TEXTS))]
    reviewed = _reviewed("sentiment", quick_model_dir, ids, TEXTS, kafka_bootstrap, topic_prefix,
                         tmp_path / "serve.log")
    assert all({"label", "score"} <= set(reviewed[i]) for i in ids)

    # Never the original file's majority label: a retrained model that answered it for everything
    # would then pass without having learnt anything from the feedback.
    shipped = _shipped_rows(200)
    majority = Counter(label for _, label in shipped).most_common(1)[0][0]
    first_answers = [reviewed[i]["label"] for i in ids]
    given = Counter(first_answers)
    labels = sorted(set(read_model_info(quick_model_dir).labels) - {majority})
    corrected = min(labels, key=lambda label: given[label])
    changed = [i for i, answer in enumerate(first_answers) if answer != corrected]
    assert changed, "the corrected label is the one the first model gave least: some items must change"
    wrong = next(label for label in read_model_info(quick_model_dir).labels if label != corrected)
    # Two reviewed texts are in the original file too, under another label: the verdicts replace them.
    original = _csv_file(tmp_path / "original.csv", [*shipped, (TEXTS[0], wrong), (TEXTS[3], wrong)])

    # Verdicts keyed by id (one partition per id, so offset order is the order they were sent).
    verdicts = [(ids[0], {"id": ids[0], "label": wrong})]            # overridden by the next one
    verdicts += [(i, {"id": i, "label": corrected}) for i in ids]
    verdicts += [(ids[1], {"id": ids[1], "label": corrected})]       # a duplicate
    verdicts += [("x", {"id": f"{topic_prefix}never-reviewed", "label": corrected})]
    produce(kafka_bootstrap, topics.feedback,
            [(key.encode(), json.dumps(value).encode(), []) for key, value in verdicts]
            + [(b"bad", b"{not json", []), (b"bad", json.dumps({"id": ids[2]}).encode(), [])])

    feedback_file = tmp_path / "feedback.csv"
    exported = _slm("feedback", "export", "--task", "sentiment", "--bootstrap", kafka_bootstrap,
                    "--topic-prefix", topic_prefix, "--model", str(quick_model_dir), "--out", str(feedback_file))
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert (f"joined {len(ids)}, duplicates 1, conflicts overridden 1, feedback without a review record 1, "
            "review records without input 0, invalid feedback records 2") in exported.stdout
    assert "Zorblax" not in exported.stdout + exported.stderr
    with open(feedback_file, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted((r["text"], r["label"]) for r in rows) == sorted((t, corrected) for t in TEXTS)

    retrained = tmp_path / "retrained"
    trained = _slm("train", "sentiment", "--data", str(original), "--feedback", str(feedback_file), "--out",
                   str(retrained), "--quick", "--epochs", "4")
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "feedback replaced 2 rows of the training data" in trained.stdout
    assert "Zorblax" not in trained.stdout + trained.stderr
    data = read_model_info(retrained).training["data"]
    assert data["feedback"][0]["file"] == str(feedback_file) and data["train"]["rows_used"] >= len(TEXTS)
    assert data["feedback_merge"] == {"replaced": 2, "superseded": 0}

    answers = _answers(retrained, TEXTS)
    assert [answers[i] for i in changed] == [corrected] * len(changed), (first_answers, answers, corrected)


ENTITY_TEXTS = [
    "Zorblax Mining signs a loan agreement with the Borrower .",
    "The Borrower shall pay Zorblax Mining on demand .",
    "Zorblax Mining shall notify the Borrower in writing .",
    "The Lender may assign this note to Zorblax Mining .",
    "Zorblax Mining will deliver the collateral to the Lender .",
    "Zorblax Mining , as Lender , agrees to lend to the Borrower .",
    "The Borrower grants Zorblax Mining a security interest .",
    "Zorblax Mining may inspect the books of the Borrower .",
    "The Lender and Zorblax Mining agree to these terms .",
    "Zorblax Mining guarantees the obligations of the Borrower .",
    "The Borrower shall keep Zorblax Mining informed .",
    "Zorblax Mining waives notice to the Lender .",
]


def _reviewers_spans(text: str) -> set[tuple[str, int, int]]:
    """What the reviewers say: the company is an ORG; the parties are PER, as FIN tags them."""
    companies = {("ORG", m.start(), m.end()) for m in re.finditer(r"Zorblax Mining", text)}
    return companies | {("PER", m.start(), m.end()) for m in re.finditer(r"\b(?:Borrower|Lender)\b", text)}


def _label(spans: set[tuple[str, int, int]], text: str) -> list[dict]:
    return [{"type": kind, "start": start, "end": end, "text": text[start:end]} for kind, start, end in sorted(spans)]


def _original_conll(path: Path, sentences: int, stale: list[str]) -> Path:
    """The first ``sentences`` sentences of the shipped entities training file (IOB2), then a document
    of the ``stale`` texts with the company tagged a person, as the first model answered."""
    shipped = read_conll(dataset_for("entities").train_file)[:sentences]
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        document = None
        for sentence in shipped:
            if sentence.document != document:
                handle.write("-DOCSTART- O\n\n")
                document = sentence.document
            tags = iob2_tags(sentence.spans, len(sentence.tokens))
            handle.write("".join(f"{token} {tag}\n" for token, tag in zip(sentence.tokens, tags)) + "\n")
        handle.write("-DOCSTART- O\n\n")
        for text in stale:
            tokens = text.split()
            tags = ["B-PER" if t in ("Zorblax", "Borrower", "Lender") else "I-PER" if t == "Mining" else "O"
                    for t in tokens]
            handle.write("".join(f"{token} {tag}\n" for token, tag in zip(tokens, tags)) + "\n")
    return path


def test_entity_feedback_retrains_the_model_to_the_reviewers_spans(quick_models, tmp_path, kafka_bootstrap,
                                                                   topic_prefix):
    model_dir = quick_models("entities")
    topics = TaskTopics("entities", topic_prefix)
    ids = [f"{topic_prefix}item-{i}" for i in range(len(ENTITY_TEXTS))]
    reviewed = _reviewed("entities", model_dir, ids, ENTITY_TEXTS, kafka_bootstrap, topic_prefix,
                         tmp_path / "serve.log")
    wanted = [_reviewers_spans(text) for text in ENTITY_TEXTS]
    first_answers = [{(e["type"], e["start"], e["end"]) for e in reviewed[i]["entities"]} for i in ids]
    changed = [n for n, (answer, spans) in enumerate(zip(first_answers, wanted)) if answer != spans]
    assert changed, "the first model must miss the company somewhere, or the retraining shows nothing"

    # Verdicts keyed by id (one partition per id, so offset order is the order they were sent).
    parties_only = {span for span in wanted[0] if span[0] == "PER"}
    verdicts = [(ids[0], {"id": ids[0], "label": _label(parties_only, ENTITY_TEXTS[0])})]  # overridden
    verdicts += [(i, {"id": i, "label": _label(spans, text)}) for i, spans, text in zip(ids, wanted, ENTITY_TEXTS)]
    # A duplicate: the same spans in another order, with the score a reviewer's tool may copy along.
    again = [{"type": kind, "start": start, "end": end, "score": 0.5} for kind, start, end in sorted(wanted[1])[::-1]]
    verdicts += [(ids[1], {"id": ids[1], "label": again})]
    verdicts += [("x", {"id": f"{topic_prefix}never-reviewed", "label": []})]
    outside = [{"type": "ORG", "start": 0, "end": len(ENTITY_TEXTS[2]) + 5}]
    produce(kafka_bootstrap, topics.feedback,
            [(key.encode(), json.dumps(value).encode(), []) for key, value in verdicts]
            + [(b"bad", b"{not json", []), (ids[2].encode(), json.dumps({"id": ids[2], "label": outside}).encode(), [])])

    feedback_file = tmp_path / "feedback.conll"
    exported = _slm("feedback", "export", "--task", "entities", "--bootstrap", kafka_bootstrap,
                    "--topic-prefix", topic_prefix, "--model", str(model_dir), "--out", str(feedback_file))
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert (f"joined {len(ids)}, duplicates 1, conflicts overridden 1, feedback without a review record 1, "
            "review records without input 0, invalid feedback records 2") in exported.stdout
    assert "Zorblax" not in exported.stdout + exported.stderr
    written = {}
    for sentence in read_conll(feedback_file):
        text, starts = sentence_text(sentence.tokens)
        written[text] = {(kind, starts[s], starts[e - 1] + len(sentence.tokens[e - 1])) for kind, s, e in sentence.spans}
    assert written == dict(zip(ENTITY_TEXTS, wanted))

    # Two reviewed texts are in the original file too, the company tagged a person: the verdicts replace them.
    original = _original_conll(tmp_path / "original.conll", sentences=150, stale=[ENTITY_TEXTS[0], ENTITY_TEXTS[5]])
    retrained = tmp_path / "retrained"
    trained = _slm("train", "entities", "--data", str(original), "--feedback", str(feedback_file), "--out",
                   str(retrained), "--quick", "--epochs", "4")
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "feedback replaced 2 sentences of the training data" in trained.stdout
    assert "Zorblax" not in trained.stdout + trained.stderr
    data = read_model_info(retrained).training["data"]
    assert data["feedback"][0]["file"] == str(feedback_file)
    assert data["feedback_merge"] == {"replaced": 2, "superseded": 0}

    answers = [{(e.type, e.start, e.end) for e in result.entities}
               for result in _processed("entities", retrained, ENTITY_TEXTS)]
    assert answers == wanted, (first_answers, answers)
