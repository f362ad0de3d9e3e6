"""``slm feedback export`` on the real broker, without a model: review records and verdicts are
produced here as a service and reviewers would, and the command's file and counts are checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.common.token_files import read_conll
from shared.kafka import TaskTopics
from tests.support.kafka_io import produce
from tests.support.processes import REPO_ROOT

pytestmark = pytest.mark.integration
SLM = str(Path(sys.executable).with_name("slm"))
TEXT = "Loan to Acme Corp, signed by Jane Doe in Paris."


def _export(task: str, bootstrap: str | None, prefix: str, out: Path, *more: str) -> subprocess.CompletedProcess:
    # No --bootstrap: the command takes SLM_KAFKA_BOOTSTRAP, as slm drift does.
    where = ["--bootstrap", bootstrap] if bootstrap else []
    env = {k: v for k, v in os.environ.items() if k != "SLM_KAFKA_BOOTSTRAP"}
    return subprocess.run([SLM, "feedback", "export", "--task", task, *where, "--topic-prefix", prefix, "--out",
                           str(out), "--timeout", "60", *more],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=180, env=env)


def _review(item_id: str, text: str | None) -> bytes:
    value = {"id": item_id, "task": "entities", "model": "m:1", "entities": [], "review": True}
    if text is not None:
        value["input"] = {"text": text, "fields": {}}
    return json.dumps(value).encode()


def test_entity_verdicts_become_a_conll_file_the_last_verdict_winning(kafka_bootstrap, topic_prefix, tmp_path):
    topics = TaskTopics("entities", topic_prefix)
    produce(kafka_bootstrap, topics.review, [(b"e1", _review("e1", TEXT), []), (b"e2", _review("e2", "No names"), []),
                                             (b"e3", _review("e3", None), [])])
    spans = [{"type": "ORG", "start": 8, "end": 17, "text": "Acme Corp", "score": 0.4},
             {"type": "PER", "start": 29, "end": 37}]
    produce(kafka_bootstrap, topics.feedback, [
        (b"e1", json.dumps({"id": "e1", "label": spans[:1]}).encode(), []),
        (b"e1", json.dumps({"id": "e1", "label": spans}).encode(), []),     # overrides the first
        (b"e2", json.dumps({"id": "e2", "label": []}).encode(), []),
        (b"e3", json.dumps({"id": "e3", "label": []}).encode(), []),        # its review has no input
        (b"e4", json.dumps({"id": "e2", "label": [{"type": "ORG", "start": 0, "end": 99}]}).encode(), []),
        (None, b"\x00\x01", []),
    ])
    out = tmp_path / "feedback.conll"
    result = _export("entities", kafka_bootstrap, topic_prefix, out)
    assert result.returncode == 0, result.stderr
    assert ("joined 2, duplicates 0, conflicts overridden 1, feedback without a review record 0, "
            "review records without input 1, invalid feedback records 2") in result.stdout
    assert "Acme" not in result.stdout + result.stderr
    first, second = read_conll(out)
    assert first.tokens == ("Loan", "to", "Acme", "Corp", ",", "signed", "by", "Jane", "Doe", "in", "Paris.")
    assert first.spans == (("ORG", 2, 4), ("PER", 7, 9))
    assert second.tokens == ("No", "names") and second.spans == ()


def test_nothing_to_join_writes_no_file_and_says_so(kafka_bootstrap, topic_prefix, tmp_path):
    # Neither topic exists yet: nothing to read is not an error of the reading, but no file is written.
    out = tmp_path / "feedback.jsonl"
    result = _export("sentiment", kafka_bootstrap, topic_prefix, out)
    assert result.returncode == 2
    assert "joined 0" in result.stdout
    assert f"error: no feedback on {topic_prefix}sentiment.feedback joined a review record" in result.stderr
    assert not out.exists()


def test_a_label_the_model_lacks_is_invalid_unless_allowed_and_the_bootstrap_can_come_from_the_env(
        kafka_bootstrap, topic_prefix, tmp_path, monkeypatch):
    topics = TaskTopics("sentiment", topic_prefix)
    review = {"id": "s1", "task": "sentiment", "model": "m:1", "label": "neutral", "score": 0.4, "review": True,
              "input": {"text": "Shares of Acme drift", "fields": {}}}
    produce(kafka_bootstrap, topics.review, [(b"s1", json.dumps(review).encode(), []),
                                             (b"s2", json.dumps({**review, "id": "s2"}).encode(), [])])
    produce(kafka_bootstrap, topics.feedback, [(b"s1", json.dumps({"id": "s1", "label": "bulish"}).encode(), []),
                                               (b"s2", json.dumps({"id": "s2", "label": "bearish"}).encode(), [])])
    monkeypatch.setenv("SLM_KAFKA_BOOTSTRAP", kafka_bootstrap)
    out = tmp_path / "feedback.jsonl"
    env_only = subprocess.run([SLM, "feedback", "export", "--task", "sentiment", "--topic-prefix", topic_prefix,
                               "--out", str(out), "--timeout", "60"], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=180)
    assert env_only.returncode == 0, env_only.stderr
    assert "joined 1," in env_only.stdout and "invalid: label not among the model's labels (1)" in env_only.stdout
    assert [json.loads(line)["label"] for line in out.read_text().splitlines()] == ["bearish"]
    allowed = _export("sentiment", kafka_bootstrap, topic_prefix, out, "--allow-new-labels")
    assert allowed.returncode == 0, allowed.stderr
    assert "joined 2," in allowed.stdout


def test_without_a_bootstrap_it_says_where_to_give_one(tmp_path):
    result = _export("sentiment", None, "p.", tmp_path / "f.jsonl")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: give --bootstrap or set SLM_KAFKA_BOOTSTRAP"
