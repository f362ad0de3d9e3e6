"""A model folder whose files differ from its manifest is refused before anything loads:
one line naming the file, a non-zero exit, never a traceback and never a ready service."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shared.runtime.manifest import ModelIntegrityError
from tests.support.processes import REPO_ROOT, free_port, run_to_exit

pytestmark = pytest.mark.slow
SLM = str(Path(sys.executable).with_name("slm"))


@pytest.fixture
def changed_model(quick_model_dir, tmp_path) -> tuple[Path, Path]:
    """A copy of the quick sentiment model with one byte of its served graph flipped."""
    model = tmp_path / "model"
    shutil.copytree(quick_model_dir, model)
    graph = model / "model.onnx"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))
    return model, graph


def test_slm_serve_refuses_a_changed_model_in_one_line(changed_model):
    model, graph = changed_model
    result = run_to_exit([SLM, "serve", "sentiment", "--model", str(model), "--port", str(free_port())], 120,
                         cwd=REPO_ROOT)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: model folder refused: {graph}: content differs from the manifest (SHA-256 mismatch)"


def test_slm_evaluate_refuses_a_changed_model(changed_model):
    model, graph = changed_model
    result = subprocess.run([SLM, "evaluate", "--model", str(model)], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert str(graph) in result.stderr and "Traceback" not in result.stderr


def test_ray_application_refuses_a_truncated_model_before_any_replica(quick_model_dir, tmp_path):
    from shared.ray_replicas import task_application
    from shared.ray_settings import ReplicaSettings
    from shared.settings import ServingSettings

    model = tmp_path / "model"
    shutil.copytree(quick_model_dir, model)
    tokenizer = model / "tokenizer.json"
    tokenizer.write_bytes(tokenizer.read_bytes()[:100])
    with pytest.raises(ModelIntegrityError, match=r"tokenizer\.json: is truncated: 100 bytes"):
        task_application("sentiment", ServingSettings.from_env(service={"model_dir": model}), ReplicaSettings())


def test_the_processor_refuses_an_extra_file(quick_model_dir, tmp_path):
    from shared.task_kinds import load_processor

    model = tmp_path / "model"
    shutil.copytree(quick_model_dir, model)
    (model / "model.onnx.bak").write_bytes(b"left behind")
    with pytest.raises(ModelIntegrityError, match=r"model\.onnx\.bak: is not listed in slm_model\.json"):
        load_processor("sentiment", model)
