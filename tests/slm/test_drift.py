"""Drift end to end on the real broker: the shipped sentiment model's consumer loop answers its own test
set, then helpdesk tickets; ``slm drift`` reads the results topic and the service's monitor its window."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from slm.commands.drift_commands import drift_report, read_last_records

from shared.drift import REFERENCE_FILE, DriftMonitor, DriftReference
from shared.kafka import TaskConsumerLoop, TaskTopics
from shared.kafka.settings import KafkaSettings
from shared.observed import ObservedProcessor
from shared.runtime import read_model_info
from slm.cli import main
from tests.support.kafka_io import drain, produce
from tests.support.processes import REPO_ROOT

SHIPPED_SENTIMENT = REPO_ROOT / "models" / "sentiment"
SLM = str(Path(sys.executable).with_name("slm"))
WINDOW = 1000


def _requests(task: str, limit: int | None) -> list[dict]:
    from pipelines.drift_reference import reference_requests
    from pipelines.kinds import recipe_class
    from pipelines.tasks import dataset_for
    from shared.runtime import read_model_info
    from shared.task_kinds import kind_named

    info = read_model_info(REPO_ROOT / "models" / task)
    recipe = recipe_class(kind_named(info.kind)).for_model(info)
    requests = reference_requests(recipe, dataset_for(task).test_file, limit=limit)
    return [r.model_dump(exclude_none=True) for r in requests]


def _cli_drift(bootstrap: str, prefix: str) -> dict:
    result = CliRunner().invoke(main, ["drift", "--task", "sentiment", "--bootstrap", bootstrap, "--window",
                                       str(WINDOW), "--json"], env={"SLM_KAFKA_TOPIC_PREFIX": prefix})
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.integration
def test_drift_of_the_sentiment_service_on_its_own_test_set_and_on_helpdesk_tickets(kafka_bootstrap, topic_prefix):
    from shared.task_kinds import load_processor

    reference = DriftReference.read(SHIPPED_SENTIMENT)
    assert reference is not None, f"{SHIPPED_SENTIMENT} has no {REFERENCE_FILE}"
    processor = load_processor("sentiment", SHIPPED_SENTIMENT, intra_op_threads=2)
    monitor = DriftMonitor("sentiment", processor.model_id, reference, window=WINDOW)
    settings = KafkaSettings(bootstrap=kafka_bootstrap, topic_prefix=topic_prefix,
                             group_id=f"{topic_prefix}slm-sentiment", max_batch=64)
    topics = TaskTopics("sentiment", topic_prefix)
    own = _requests("sentiment", None)
    shifted = _requests("helpdesk", WINDOW)
    loop = TaskConsumerLoop(ObservedProcessor(processor, [monitor]), settings)  # as the service wires it
    loop.start()
    try:
        assert loop.wait_ready(60), "consumer never joined its group"
        produce(kafka_bootstrap, topics.requests, [(None, json.dumps(r).encode(), []) for r in own])
        drain(kafka_bootstrap, topics.results, until=lambda r: len(r) >= len(own), timeout=300)
        own_window = monitor.psi()
        own_topic = drift_report(reference, [r.value for r in read_last_records(settings, topics.results, WINDOW)])
        own_cli = _cli_drift(kafka_bootstrap, topic_prefix)

        produce(kafka_bootstrap, topics.requests, [(None, json.dumps(r).encode(), []) for r in shifted])
        drain(kafka_bootstrap, topics.results, until=lambda r: len(r) >= len(own) + len(shifted), timeout=300)
        shifted_window = monitor.psi()
        shifted_cli = _cli_drift(kafka_bootstrap, topic_prefix)
    finally:
        loop.stop()
    print(f"own test set ({len(own)} requests), last {WINDOW}: service window {own_window}, results topic "
          f"{own_cli['psi']}")
    print(f"helpdesk tickets ({len(shifted)} requests), last {WINDOW}: service window {shifted_window}, results topic "
          f"{shifted_cli['psi']}")

    # Its own test set: no feature moves.
    assert own_topic.used == own_cli["used"] == WINDOW
    assert own_cli["psi"] == pytest.approx(own_topic.psi)
    assert set(own_cli["psi"]) == {"label", "score", "max"}
    assert own_cli["psi"]["max"] < 0.1
    assert set(own_window) == {"label", "score", "length", "max"} and own_window["max"] < 0.1
    # The service and the results topic see the same answers (their last 1000 may differ by the few
    # answered in the same millisecond on different partitions): nearly the same label and score PSI.
    assert own_window["label"] == pytest.approx(own_cli["psi"]["label"], abs=0.01)
    assert own_window["score"] == pytest.approx(own_cli["psi"]["score"], abs=0.01)

    # Helpdesk tickets: the last 1000 results are all theirs, and the stream has moved far.
    assert shifted_cli["used"] == WINDOW and shifted_cli["read"] == WINDOW
    assert shifted_cli["psi"]["max"] > 0.25
    assert shifted_window["max"] > 0.25 and shifted_window["length"] > 0.25
    assert shifted_window["label"] == pytest.approx(shifted_cli["psi"]["label"])


def test_drift_reference_writes_the_file_and_a_manifest_that_verifies(tmp_path):
    folder = tmp_path / "sentiment"
    shutil.copytree(SHIPPED_SENTIMENT, folder, ignore=shutil.ignore_patterns("model.fp32.onnx"))
    (folder / REFERENCE_FILE).unlink()
    data = tmp_path / "few.csv"
    rows = ["Stocks rally as earnings beat,1", "Bank shares slump on weak outlook,0",
            "Company to hold annual meeting in May,2"] * 50
    data.write_text("\n".join(["text,label", *rows]) + "\n", encoding="utf-8")

    written = subprocess.run([SLM, "drift", "reference", "--task", "sentiment", "--model", str(folder), "--data",
                              str(data)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert written.returncode == 0, written.stderr
    reference = DriftReference.read(folder)
    assert reference.items == 150 and reference.source["rows"] == 150
    assert sum(reference.features["label"].counts) == 150
    # Three distinct texts: three lengths, and every answer counted in one of their bins.
    assert sorted(c for c in reference.features["length"].counts if c) == [50, 50, 50]
    verified = subprocess.run([SLM, "models", "verify", str(folder)], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=120)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith(f"ok    {folder}")
    # The fp32 graph the release folder leaves out keeps its entry: a copy put there later is checked.
    assert read_model_info(folder).optional_files == read_model_info(SHIPPED_SENTIMENT).optional_files != {}


def test_drift_without_a_reference_is_one_line(tmp_path):
    result = subprocess.run([SLM, "drift", "--task", "sentiment", "--model", str(tmp_path), "--bootstrap",
                             "127.0.0.1:1"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: {tmp_path} has no {REFERENCE_FILE}: `slm drift reference --task "
                                     f"sentiment --model {tmp_path}` writes it")


def test_drift_reference_refuses_a_folder_whose_files_changed(tmp_path):
    folder = tmp_path / "sentiment"
    shutil.copytree(SHIPPED_SENTIMENT, folder, ignore=shutil.ignore_patterns("model.fp32.onnx"))
    config = folder / "config.json"
    config.write_text(config.read_text(encoding="utf-8").replace("}", " }", 1), encoding="utf-8")
    manifest_before = (folder / "slm_model.json").read_bytes()

    refused = subprocess.run([SLM, "drift", "reference", "--task", "sentiment", "--model", str(folder)], cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=120)
    # The manifest is rewritten from the files as they are: a changed file must not be blessed by it.
    assert refused.returncode == 2
    assert refused.stderr.strip() == (f"error: model folder refused: {config}: has {config.stat().st_size} bytes, "
                                      f"the manifest says {config.stat().st_size - 1}")
    assert (folder / "slm_model.json").read_bytes() == manifest_before



@pytest.mark.integration
def test_the_last_records_of_a_topic_that_does_not_exist_are_none(kafka_bootstrap, topic_prefix):
    settings = KafkaSettings(bootstrap=kafka_bootstrap, topic_prefix=topic_prefix)
    assert read_last_records(settings, TaskTopics("sentiment", topic_prefix).results, WINDOW) == []


@pytest.mark.integration
def test_drift_reads_the_topic_of_its_topic_prefix(kafka_bootstrap, topic_prefix):
    # --topic-prefix wins over SLM_KAFKA_TOPIC_PREFIX, as in slm feedback export.
    produce(kafka_bootstrap, TaskTopics("sentiment", topic_prefix).results, [(None, b"not a result", [])])
    result = CliRunner().invoke(main, ["drift", "--task", "sentiment", "--bootstrap", kafka_bootstrap, "--topic-prefix",
                                       topic_prefix, "--json"], env={"SLM_KAFKA_TOPIC_PREFIX": "elsewhere."})
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert (report["topic"], report["read"], report["unreadable"]) == (f"{topic_prefix}sentiment.results", 1, 1)
