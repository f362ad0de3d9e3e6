"""Review and feedback end to end on the real broker: requests stream through the sentiment service,
their review records carry the input, reviewers' verdicts go to ``<task>.feedback``, ``slm feedback
export`` joins them into a training file, and a model retrained on it answers the fed-back items with
their corrected label.

The fed-back items share a made-up company name, so that one short training can learn what the
reviewers said about them; the corrected label is the one the first model gave them least (never the
training file's majority label), chosen at run time from its own answers.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from pipelines.classification import rename_labels
from pipelines.common.data import read_examples
from pipelines.tasks import dataset_for
from shared.kafka import TaskTopics
from shared.processors import Received
from shared.runtime import read_model_info
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


def _original_training_file(path: Path, rows: int) -> tuple[Path, str]:
    """The first ``rows`` rows of the shipped sentiment training file, labels by name (as results carry
    them), and its most common label."""
    dataset = dataset_for("sentiment")
    examples = rename_labels(read_examples(dataset.train_file, dataset.columns), dataset.label_names)[:rows]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows((e.text, e.label) for e in examples)
    return path, Counter(e.label for e in examples).most_common(1)[0][0]


def _answers(model_dir: Path, texts: list[str]) -> list[str]:
    """Labels as a service serving ``model_dir`` answers them (the same processor)."""
    processor = load_processor("sentiment", model_dir, intra_op_threads=1)
    return [r.label for r in processor.process([Received.now(TaskRequestV1(text=t)) for t in texts])]


def test_feedback_on_review_records_retrains_the_model_to_the_corrected_labels(quick_model_dir, tmp_path,
                                                                             kafka_bootstrap, topic_prefix):
    topics = TaskTopics("sentiment", topic_prefix)
    ids = [f"{topic_prefix}item-{i}" for i in range(len(TEXTS))]
    # Threshold 1: every answer goes to review, so each request has a review record to answer.
    env = {"SLM_KAFKA_BOOTSTRAP": kafka_bootstrap, "SLM_KAFKA_TOPIC_PREFIX": topic_prefix,
           "SLM_KAFKA_GROUP_ID": f"{topic_prefix}slm-sentiment", "SLM_REVIEW_THRESHOLD": "1.0"}
    service = ServiceProcess("sentiment", quick_model_dir, tmp_path / "serve.log", env=env).wait_ready()
    try:
        produce(kafka_bootstrap, topics.requests,
                [(i.encode(), json.dumps({"id": i, "text": t}).encode(), []) for i, t in zip(ids, TEXTS)])
        review = drain(kafka_bootstrap, topics.review,
                       until=lambda records: {json.loads(r.value)["id"] for r in records} >= set(ids))
        log = service.log()
    finally:
        assert service.terminate() == 0
    reviewed = {json.loads(r.value)["id"]: json.loads(r.value) for r in review}
    assert set(reviewed) == set(ids)
    for item_id, text in zip(ids, TEXTS):
        assert reviewed[item_id]["input"] == {"text": text, "fields": {}}
        assert {"id", "label", "score", "review", "model"} <= set(reviewed[item_id])
    assert "Zorblax" not in log, "input text must never reach the service's log"

    # Never the original file's majority label: a retrained model that answered it for everything
    # would then pass without having learnt anything from the feedback.
    original, majority = _original_training_file(tmp_path / "original.csv", rows=200)
    first_answers = [reviewed[i]["label"] for i in ids]
    given = Counter(first_answers)
    labels = sorted(set(read_model_info(quick_model_dir).labels) - {majority})
    corrected = min(labels, key=lambda label: given[label])
    changed = [i for i, answer in enumerate(first_answers) if answer != corrected]
    assert changed, "the corrected label is the one the first model gave least: some items must change"

    # Verdicts keyed by id (one partition per id, so offset order is the order they were sent).
    wrong = next(label for label in read_model_info(quick_model_dir).labels if label != corrected)
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
    data = read_model_info(retrained).training["data"]
    assert data["feedback"][0]["file"] == str(feedback_file) and data["train"]["rows_used"] >= len(TEXTS)

    answers = _answers(retrained, TEXTS)
    assert [answers[i] for i in changed] == [corrected] * len(changed), (first_answers, answers, corrected)
