"""Reference answers: a node re-answers a fixed sample and compares with the answers stored where the card was measured."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shared.errors import ModelError
from shared.runtime import write_model_info, read_model_info
from shared.reference_check import check_reference_answers, check_reference_at_start
from shared.runtime.reference_answers import REFERENCE_ANSWERS_FILE, compare_answers, read_reference_answers
from shared.task_kinds import TASKS, load_processor
from tests.support.processes import REPO_ROOT

SLM = str(Path(sys.executable).with_name("slm"))
MODELS = REPO_ROOT / "models"


def _folder_copy(task: str, tmp_path: Path) -> Path:
    folder = tmp_path / task
    shutil.copytree(MODELS / task, folder, ignore=shutil.ignore_patterns("model.fp32.onnx"))
    return folder


def _rewrite_reference(folder: Path, change) -> None:
    reference = json.loads((folder / REFERENCE_ANSWERS_FILE).read_text())
    change(reference)
    (folder / REFERENCE_ANSWERS_FILE).write_text(json.dumps(reference))
    write_model_info(folder, read_model_info(folder))


def _moved_score(reference: dict) -> None:
    answer = reference["items"][3]["answer"]
    label = answer["label"]
    answer["scores"][label] = max(0.0, answer["scores"][label] - 0.2)


def test_a_moved_score_or_another_label_is_a_different_answer():
    stored = {"label": "neutral", "scores": {"neutral": 0.7, "bullish": 0.2, "bearish": 0.1}}
    close = {"label": "neutral", "scores": {"neutral": 0.705, "bullish": 0.195, "bearish": 0.1}}
    flipped = {"label": "bullish", "scores": {"neutral": 0.45, "bullish": 0.46, "bearish": 0.09}}

    assert compare_answers(stored, close) == (True, pytest.approx(0.005))
    same, difference = compare_answers(stored, flipped)
    assert not same and difference == pytest.approx(0.26)


def test_entities_decide_the_same_only_with_the_same_typed_spans():
    stored = {"entities": [{"type": "PER", "start": 0, "end": 4, "score": 0.9},
                           {"type": "ORG", "start": 10, "end": 14, "score": 0.8}]}
    moved = {"entities": [{"type": "PER", "start": 0, "end": 4, "score": 0.85},
                          {"type": "ORG", "start": 10, "end": 14, "score": 0.8}]}
    retyped = {"entities": [{"type": "PER", "start": 0, "end": 4, "score": 0.9},
                            {"type": "LOC", "start": 10, "end": 14, "score": 0.8}]}

    assert compare_answers(stored, moved) == (True, pytest.approx(0.05))
    assert compare_answers(stored, retyped)[0] is False


@pytest.mark.parametrize("task", TASKS)
def test_each_release_model_answers_its_reference_requests_as_stored(task):
    reference = read_reference_answers(MODELS / task)
    assert reference is not None and len(reference["items"]) >= 16
    assert REFERENCE_ANSWERS_FILE in read_model_info(MODELS / task).files  # covered by the manifest

    check = check_reference_answers(load_processor(task, MODELS / task, intra_op_threads=1), reference)

    assert check.ok, check.summary()
    assert check.items == len(reference["items"])


def test_a_service_refuses_to_start_when_its_answers_differ_only_if_told(tmp_path, caplog):
    folder = _folder_copy("sentiment", tmp_path)
    _rewrite_reference(folder, _moved_score)
    processor = load_processor("sentiment", folder, intra_op_threads=1)

    with pytest.raises(ModelError, match="answers NOT as stored"):
        check_reference_at_start(processor, folder, "refuse")
    with caplog.at_level(logging.WARNING, logger="shared.reference_check"):
        check_reference_at_start(processor, folder, "warn")
    assert "answers NOT as stored" in caplog.text
    check_reference_at_start(processor, folder, "off")  # nothing answered, nothing raised


def test_models_verify_scores_fails_a_folder_whose_answers_moved(tmp_path):
    folder = _folder_copy("sentiment", tmp_path)
    good = subprocess.run([SLM, "models", "verify", "--scores", str(folder)], capture_output=True, text=True,
                          timeout=120)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "answers as stored: 32/32" in good.stdout

    _rewrite_reference(folder, _moved_score)
    bad = subprocess.run([SLM, "models", "verify", "--scores", str(folder)], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 1
    assert "FAIL" in bad.stdout and "answers NOT as stored" in bad.stdout


# The shipped sentiment folder re-answering its reference requests; "as-stored" loads the graph as
# it is, as the services did before they checked their CPU's int8 kernels.
RESCORE = """
import json, sys
from pathlib import Path
import shared.runtime.int8_weights as int8_weights
if sys.argv[2] == "as-stored":
    int8_weights.u8s8_is_exact = lambda: True
from shared.reference_check import check_reference_answers
from shared.runtime.reference_answers import read_reference_answers
from shared.task_kinds import load_processor
folder = Path(sys.argv[1])
check = check_reference_answers(load_processor("sentiment", folder, intra_op_threads=1), read_reference_answers(folder))
print(json.dumps({"ok": check.ok, "summary": check.summary()}))
"""


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("qemu-x86_64") is None,
                    reason="qemu-x86_64 (Debian qemu-user) is not installed; `make test` installs it")
def test_on_a_cpu_without_vnni_the_release_model_answers_as_stored_and_its_graph_as_stored_does_not():
    without_vnni = [shutil.which("qemu-x86_64"), "-cpu", "Haswell", sys.executable]

    verified = subprocess.run([*without_vnni, SLM, "models", "verify", "--scores", str(MODELS / "sentiment")],
                              capture_output=True, text=True, timeout=500, cwd=REPO_ROOT)
    as_stored = subprocess.run([*without_vnni, "-c", RESCORE, str(MODELS / "sentiment"), "as-stored"],
                               capture_output=True, text=True, timeout=500, cwd=REPO_ROOT)

    assert verified.returncode == 0, verified.stdout + verified.stderr[-2000:]
    assert "answers as stored: 32/32" in verified.stdout
    assert as_stored.returncode == 0, as_stored.stderr[-2000:]
    assert json.loads(as_stored.stdout.splitlines()[-1])["ok"] is False, as_stored.stdout
