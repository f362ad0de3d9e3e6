"""The model folder's manifest: every file's SHA-256 and size, checked before anything loads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shared.runtime import ModelInfo, open_model_folder, read_model_info, write_model_info
from shared.runtime.manifest import ModelIntegrityError
from tests.support.processes import REPO_ROOT

SLM = str(Path(sys.executable).with_name("slm"))


@pytest.fixture
def folder(tmp_path) -> Path:
    """A model folder as training leaves it (the graph is only bytes here: nothing is loaded)."""
    model = tmp_path / "model"
    (model / "card").mkdir(parents=True)
    (model / "model.onnx").write_bytes(bytes(range(256)) * 40)
    (model / "model.fp32.onnx").write_bytes(b"fp32" * 100)
    (model / "tokenizer.json").write_text('{"version": "1.0"}', encoding="utf-8")
    (model / "card" / "card.md").write_text("# card\n", encoding="utf-8")
    info = ModelInfo(task="sentiment", name="sentiment-test", version="1", labels=["a", "b"],
                     review_threshold=0.5, max_length=32)
    write_model_info(model, info)
    return model


def _refusal(folder: Path) -> str:
    with pytest.raises(ModelIntegrityError) as caught:
        open_model_folder(folder)
    return str(caught.value)


def test_a_folder_as_written_opens_and_lists_every_file(folder):
    info = open_model_folder(folder)
    assert set(info.files) == {"model.onnx", "tokenizer.json", "card/card.md"}
    assert set(info.optional_files) == {"model.fp32.onnx"}
    assert info.files["model.onnx"]["size"] == 256 * 40
    assert len(info.files["model.onnx"]["sha256"]) == 64


def test_one_changed_byte_is_refused_naming_the_file(folder):
    graph = folder / "model.onnx"
    data = bytearray(graph.read_bytes())
    data[1000] ^= 0x01
    graph.write_bytes(bytes(data))
    assert _refusal(folder) == f"model folder refused: {graph}: content differs from the manifest (SHA-256 mismatch)"


def test_a_truncated_file_is_refused(folder):
    tokenizer = folder / "tokenizer.json"
    tokenizer.write_bytes(tokenizer.read_bytes()[:5])
    assert _refusal(folder) == f"model folder refused: {tokenizer}: is truncated: 5 bytes, the manifest says 18"


def test_a_missing_file_is_refused(folder):
    (folder / "card" / "card.md").unlink()
    assert "card/card.md: is missing (listed in the manifest, 7 bytes)" in _refusal(folder)


def test_an_extra_file_is_refused(folder):
    (folder / "card" / "notes.txt").write_text("added later", encoding="utf-8")
    assert "card/notes.txt: is not listed in slm_model.json (an extra file)" in _refusal(folder)


def test_the_optional_fp32_graph_may_be_absent_but_not_changed(folder):
    fp32 = folder / "model.fp32.onnx"
    fp32.unlink()
    open_model_folder(folder)  # a release folder without its fp32 graph serves
    fp32.write_bytes(b"fp32" * 101)
    assert "model.fp32.onnx: has 404 bytes, the manifest says 400" in _refusal(folder)


def test_a_folder_without_a_manifest_is_refused(folder):
    info_path = folder / "slm_model.json"
    data = json.loads(info_path.read_text(encoding="utf-8"))
    data.pop("files")
    info_path.write_text(json.dumps(data), encoding="utf-8")
    assert "has no file manifest" in _refusal(folder)


def test_several_problems_are_counted_in_the_one_line(folder):
    (folder / "card" / "card.md").unlink()
    (folder / "extra.bin").write_bytes(b"x")
    message = _refusal(folder)
    assert "\n" not in message and "(and 1 more problem(s); `slm models verify` lists them)" in message


def _slm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SLM, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)


def test_models_verify_passes_a_good_folder_and_fails_a_changed_one(folder, tmp_path):
    good = _slm("models", "verify", str(folder))
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.startswith(f"ok    {folder} (sentiment-test:1, 3 files)")

    graph = folder / "model.onnx"
    graph.write_bytes(graph.read_bytes()[:-1] + b"\x00")
    (folder / "card" / "card.md").unlink()
    bad = _slm("models", "verify", str(folder))
    assert bad.returncode == 1
    assert bad.stdout.splitlines() == [f"FAIL  {folder}/card/card.md: is missing (listed in the manifest, 7 bytes)",
                                       f"FAIL  {graph}: content differs from the manifest (SHA-256 mismatch)"]
    assert "Traceback" not in bad.stderr


def test_models_manifest_rewrites_it_after_a_deliberate_change(folder):
    (folder / "card" / "card.md").write_text("# card, edited\n", encoding="utf-8")
    assert _slm("models", "verify", str(folder)).returncode == 1
    written = _slm("models", "manifest", str(folder))
    assert written.returncode == 0, written.stderr
    assert _slm("models", "verify", str(folder)).returncode == 0
    assert read_model_info(folder).files["card/card.md"]["size"] == len("# card, edited\n")


def test_models_manifest_keeps_the_entry_of_an_optional_file_left_out(folder):
    """A release folder leaves the fp32 graph out; a rewritten manifest still checks a copy put back."""
    fp32 = folder / "model.fp32.onnx"
    original = fp32.read_bytes()
    fp32.unlink()
    (folder / "card" / "card.md").write_text("# card, edited\n", encoding="utf-8")
    assert _slm("models", "manifest", str(folder)).returncode == 0
    assert "model.fp32.onnx" in read_model_info(folder).optional_files
    fp32.write_bytes(b"fp32" * 101)
    assert "model.fp32.onnx: has 404 bytes, the manifest says 400" in _refusal(folder)
    fp32.write_bytes(original)
    open_model_folder(folder)
