"""Shadow, then promote: a second model version answers the same requests into <task>.shadow.results.

On the real broker. The second version is the shipped sentiment folder copied under another
version (same weights, a new model id, a rewritten manifest): these tests are about routing (who
reads what, who publishes where), which needs two model ids, not two trainings. Being the same
graph, static int8 gives both the same answers, so the agreement ``slm compare`` reports is 1.0.
"""

from __future__ import annotations

import csv
import gzip
import itertools
import json
import shutil
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from devtools.host_tools import free_port
from devtools.service_process import ServerProcess
from pipelines.sentiment import DATASET
from shared.kafka import TaskConsumerLoop, TaskTopics
from shared.kafka.clients import client_options
from shared.kafka.settings import KafkaSettings
from shared.kafka.topic_reader import read_topic_or_none
from shared.runtime import read_model_info, write_model_info
from shared.settings import default_model_dir
from shared.task_kinds import load_processor
from slm.cli import main
from tests.support.kafka_io import committed_offsets, drain, produce
from tests.support.processes import ServiceProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TASK = "sentiment"
MALFORMED = [(b"bad-1", b"not json", []), (b"bad-2", b'{"id": "no-text"}', [])]


@pytest.fixture(scope="module")
def primary_dir() -> Path:
    return default_model_dir(TASK)


@pytest.fixture(scope="module")
def shadow_dir(tmp_path_factory, primary_dir) -> Path:
    """The shipped folder as a second version: same files, version ``<version>.shadow-test``."""
    folder = tmp_path_factory.mktemp("shadow") / TASK
    shutil.copytree(primary_dir, folder)
    info = read_model_info(folder)
    info.version = f"{info.version}.shadow-test"
    write_model_info(folder, info)
    return folder


def _test_rows(n: int) -> list[tuple[str, str]]:
    """(text, gold label) of the first ``n`` rows of the task's test set."""
    with gzip.open(DATASET.test_file, "rt", encoding="utf-8", newline="") as f:
        return [(row["text"], DATASET.label_names[row["label"]]) for row in itertools.islice(csv.DictReader(f), n)]


def _requests(prefix: str, rows) -> list:
    return [(f"k{i}".encode(), json.dumps({"id": f"{prefix}{i}", "text": text}).encode(), [])
            for i, (text, _) in enumerate(rows)]


def _by_id(records) -> dict[str, dict]:
    return {body["id"]: body for body in (json.loads(r.value) for r in records)}


def _consumed(bootstrap: str, group: str, topic: str) -> int:
    return sum(offset for tp, offset in committed_offsets(bootstrap, group).items() if tp.topic == topic)


def test_primary_and_shadow_each_answer_every_request_and_only_the_primary_reviews_and_dead_letters(
        kafka_bootstrap, topic_prefix, primary_dir, shadow_dir):
    rows = _test_rows(1000)
    primary_topics, shadow_topics = TaskTopics(TASK, topic_prefix), TaskTopics(TASK, topic_prefix, shadow=True)
    base = {"bootstrap": kafka_bootstrap, "topic_prefix": topic_prefix, "max_batch": 64}
    primary = TaskConsumerLoop(load_processor(TASK, primary_dir, intra_op_threads=1),
                               KafkaSettings(**base, group_id=f"{topic_prefix}slm-{TASK}"))
    # The shadow's group is its default, slm-sentiment-shadow (its topics are this test's own).
    shadow = TaskConsumerLoop(load_processor(TASK, shadow_dir, intra_op_threads=1), KafkaSettings(**base, shadow=True))
    assert shadow.group_id == f"slm-{TASK}-shadow"
    primary_id, shadow_id = primary.processor.model_id, shadow.processor.model_id
    assert primary_id != shadow_id
    expected = {f"{topic_prefix}{i}" for i in range(len(rows))}
    total = len(rows) + len(MALFORMED)
    primary.start()
    shadow.start()
    try:
        assert primary.wait_ready(60) and shadow.wait_ready(60), "a loop never joined its group"
        produce(kafka_bootstrap, primary_topics.requests, _requests(topic_prefix, rows) + MALFORMED)
        primary_results = _by_id(drain(kafka_bootstrap, primary_topics.results, until=lambda r: len(_by_id(r)) >= 1000))
        shadow_results = _by_id(drain(kafka_bootstrap, shadow_topics.results, until=lambda r: len(_by_id(r)) >= 1000))
        # A batch is committed once every record it produced is acknowledged: past this point
        # whatever either loop wrote to review or the DLQ is on the broker.
        for loop, topics in ((primary, primary_topics), (shadow, shadow_topics)):
            wait_for(lambda: _consumed(kafka_bootstrap, loop.group_id, topics.requests) == total, 60,
                     what=f"{loop.group_id} committed every request")
    finally:
        primary.stop()
        shadow.stop()
    assert set(primary_results) == set(shadow_results) == expected
    assert {r["model"] for r in primary_results.values()} == {primary_id}
    assert {r["model"] for r in shadow_results.values()} == {shadow_id}
    options = client_options(kafka_bootstrap)
    review = read_topic_or_none(options, primary_topics.review)
    dlq = read_topic_or_none(options, primary_topics.dlq)
    # Review copies and dead letters are the primary's alone: one each, not one per model.
    assert sorted(json.loads(r.value)["id"] for r in review) == sorted(
        i for i, r in primary_results.items() if r["review"])
    assert sorted(r.value for r in dlq) == sorted(v for _, v, _ in MALFORMED)
    # The shadow decided on review as the primary did (the same graph), and kept it to itself.
    assert sum(1 for r in shadow_results.values() if r["review"]) == len(review)


def test_slm_compare_reports_agreement_models_and_accuracy_on_feedback(kafka_bootstrap, topic_prefix, primary_dir,
                                                                        shadow_dir):
    rows = _test_rows(300)
    base = {"bootstrap": kafka_bootstrap, "topic_prefix": topic_prefix}
    primary = TaskConsumerLoop(load_processor(TASK, primary_dir, intra_op_threads=1),
                               KafkaSettings(**base, group_id=f"{topic_prefix}slm-{TASK}"))
    shadow = TaskConsumerLoop(load_processor(TASK, shadow_dir, intra_op_threads=1),
                              KafkaSettings(**base, shadow=True, group_id=f"{topic_prefix}slm-{TASK}-shadow"))
    topics = TaskTopics(TASK, topic_prefix)
    runner = CliRunner()
    command = ["compare", "--task", TASK, "--bootstrap", kafka_bootstrap, "--topic-prefix", topic_prefix,
               "--timeout", "30"]
    primary.start()
    try:
        assert primary.wait_ready(60)
        produce(kafka_bootstrap, topics.requests, _requests(topic_prefix, rows))
        drain(kafka_bootstrap, topics.results, until=lambda r: len(_by_id(r)) >= len(rows))
        missing = runner.invoke(main, command)  # no shadow yet: its topic does not exist
        shadow.start()
        assert shadow.wait_ready(60)
        drain(kafka_bootstrap, topics.shadow_results, until=lambda r: len(_by_id(r)) >= len(rows))
    finally:
        primary.stop()
        shadow.stop()
    assert missing.exit_code == 2
    assert f"topic {topic_prefix}{TASK}.shadow.results does not exist" in missing.output
    without_feedback = runner.invoke(main, command)
    assert without_feedback.exit_code == 0, without_feedback.output
    assert f"agreement     1.0000 ({len(rows)} of {len(rows)} the same answer)" in without_feedback.output
    assert f"model         {primary.processor.model_id} ({len(rows)} answers)" in without_feedback.output
    assert f"model         {shadow.processor.model_id} ({len(rows)} answers)" in without_feedback.output
    assert "none of the joined ids has a reviewer's label yet" in without_feedback.output  # the topic, empty
    # Reviewers' verdicts (the test set's gold labels) on the first 100 ids, as slm feedback publishes them.
    gold = {f"{topic_prefix}{i}": label for i, (_, label) in enumerate(rows[:100])}
    produce(kafka_bootstrap, f"{topic_prefix}{TASK}.feedback",
            [(None, json.dumps({"id": i, "label": label}).encode(), []) for i, label in gold.items()])
    with_feedback = runner.invoke(main, command)
    assert with_feedback.exit_code == 0, with_feedback.output
    answers = _by_id(drain(kafka_bootstrap, topics.results, until=lambda r: len(_by_id(r)) >= len(rows)))
    accuracy = sum(answers[i]["label"] == label for i, label in gold.items()) / len(gold)
    assert "== feedback (100 joined ids with a reviewer's label) ==" in with_feedback.output
    assert f"accuracy      primary {accuracy:.4f}  shadow {accuracy:.4f}" in with_feedback.output


def test_slm_serve_shadow_refuses_rest_and_the_primarys_rest_answers_publish_nothing(
        kafka_bootstrap, topic_prefix, primary_dir, shadow_dir, tmp_path):
    topics = TaskTopics(TASK, topic_prefix)
    env = {"SLM_KAFKA_TOPIC_PREFIX": topic_prefix, "SLM_KAFKA_MAX_BATCH": "16", "OTEL_SDK_DISABLED": "true"}
    port = free_port()
    slm = str(Path(sys.executable).with_name("slm"))
    shadow = ServerProcess([slm, "serve", TASK, "--host", "127.0.0.1", "--port", str(port), "--model", str(shadow_dir),
                            "--kafka", kafka_bootstrap, "--shadow"], tmp_path / "shadow.log", port=port,
                           env={**env, "SLM_KAFKA_GROUP_ID": f"{topic_prefix}slm-{TASK}-shadow"}, name="shadow")
    primary = ServiceProcess(TASK, primary_dir, tmp_path / "primary.log",
                             env={**env, "SLM_KAFKA_BOOTSTRAP": kafka_bootstrap,
                                  "SLM_KAFKA_GROUP_ID": f"{topic_prefix}slm-{TASK}"})
    try:
        shadow.wait_ready()
        primary.wait_ready()
        body = {"items": [{"id": f"{topic_prefix}rest-1", "text": "$AAPL beats estimates and raises guidance"}]}
        refused = httpx.post(f"{shadow.url}/predict", json=body, timeout=10)
        answered = httpx.post(f"{primary.url}/predict", json=body, timeout=10)
        probes = [httpx.get(f"{shadow.url}{path}", timeout=10).status_code for path in ("/readyz", "/livez")]
        rows = _test_rows(20)
        produce(kafka_bootstrap, topics.requests, _requests(topic_prefix, rows))
        shadow_results = _by_id(drain(kafka_bootstrap, topics.shadow_results, until=lambda r: len(_by_id(r)) >= 20))
        primary_results = _by_id(drain(kafka_bootstrap, topics.results, until=lambda r: len(_by_id(r)) >= 20))
    finally:
        shadow_code = shadow.stop()
        assert primary.terminate() == 0
    assert shadow_code == 0, shadow.log()[-3000:]
    assert refused.status_code == 503
    assert "shadow" in refused.json()["error"] and f"{TASK}.shadow.results" in refused.json()["error"]
    assert probes == [200, 200]
    assert answered.status_code == 200
    (rest_answer,) = answered.json()
    assert rest_answer["model"] == read_model_info(primary_dir).model_id
    # REST answers go back to the caller only; the Kafka requests went to both.
    assert set(shadow_results) == set(primary_results) == {f"{topic_prefix}{i}" for i in range(20)}
    assert {r["model"] for r in shadow_results.values()} == {read_model_info(shadow_dir).model_id}
    assert {r["model"] for r in primary_results.values()} == {rest_answer["model"]}
    shadow_log = shadow.log()
    assert "REST request refused by a shadow" in shadow_log
    assert "beats estimates" not in shadow_log
