"""``slm train --quick`` and ``slm evaluate``: the pipeline end to end on real data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from shared.runtime import OnnxTextClassifier, read_model_info
from tests.support.processes import REPO_ROOT

pytestmark = pytest.mark.slow
SLM = str(Path(sys.executable).with_name("slm"))


def _is_int8_graph(path: Path) -> bool:
    """Integer matmuls (dynamic) or quantize/dequantize pairs around them (static QDQ)."""
    ops = {node.op_type for node in onnx.load(path).graph.node}
    return bool(ops & {"MatMulInteger", "DynamicQuantizeMatMul", "DequantizeLinear"})


def test_quick_training_writes_a_complete_int8_model(quick_training):
    result, out = quick_training
    assert result.returncode == 0, result.stderr[-3000:]
    info = read_model_info(out)
    assert f"{info.precision} accuracy=" in result.stdout
    assert info.task == "sentiment"
    assert info.labels == ["bearish", "bullish", "neutral"]
    assert 0.5 <= info.review_threshold <= 0.95
    # The quick model's undertrained scores sit near boundaries; static int8 still keeps 0.9 of them.
    assert info.precision == "int8-static"
    assert info.metrics["dev"]["agreement_with_fp32"] >= info.training["args"]["int8_min_agreement"] >= 0.9
    assert info.training["quantization"]["tried"][-1]["agreement"] == round(info.metrics["dev"]["agreement_with_fp32"], 4)
    assert set(info.metrics["test"]) == {"served", "fp32", "baseline"}
    assert info.metrics["test"]["served"]["top3_accuracy"] == 1.0  # three labels: always in the top 3
    assert 0 < info.metrics["test"]["baseline"]["accuracy"] <= 1
    assert info.training["data"]["train"]["sha256"]
    assert info.training["data"]["train"]["file"] == "data/sentiment/sent_train.csv.gz"  # no machine path
    assert len(info.training["code"]["commit"]) == 40 and info.training["code"]["dirty"] in (True, False)
    # int8 really is quantized, and a smaller file than fp32.
    assert _is_int8_graph(out / "model.onnx")
    assert (out / "model.onnx").stat().st_size < 0.5 * (out / "model.fp32.onnx").stat().st_size
    # Every file is in the manifest, the fp32 graph as optional.
    assert set(info.optional_files) == {"model.fp32.onnx"}
    assert {"model.onnx", "tokenizer.json", "card/card.md"} <= set(info.files)
    for name in ("card/card.md", "card/confusion_matrix.png", "card/metrics.json", "tokenizer.json"):
        assert (out / name).is_file(), name


def test_quick_model_beats_the_majority_class(quick_model_dir):
    # neutral is 66% of the test set; even one quick epoch must learn something beyond it.
    info = read_model_info(quick_model_dir)
    assert info.metrics["test"]["served"]["macro_f1"] > 0.40


def test_evaluate_json_prints_one_object_with_the_metrics(quick_model_dir, tmp_path):
    data = tmp_path / "mini.csv"
    data.write_text("text,label\n$TSLA plunges after recall,0\nStocks rally to record highs,1\n"
                    "Company schedules annual meeting,2\n", encoding="utf-8")
    result = subprocess.run([SLM, "evaluate", "sentiment", "--model", str(quick_model_dir), "--data", str(data),
                             "--json", "--card-dir", str(tmp_path / "card")],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert {"accuracy", "macro_f1", "per_label", "confusion_matrix"} <= set(metrics)
    model = OnnxTextClassifier(quick_model_dir)
    expected = [p.label for p in model.predict(["$TSLA plunges after recall", "Stocks rally to record highs",
                                                "Company schedules annual meeting"])]
    gold = ["bearish", "bullish", "neutral"]
    assert metrics["accuracy"] == pytest.approx(sum(e == g for e, g in zip(expected, gold)) / 3)
    assert (tmp_path / "card" / "confusion_matrix.png").stat().st_size > 1000


def test_evaluate_reports_a_bad_file_without_a_traceback(quick_model_dir, tmp_path):
    data = tmp_path / "bad.csv"
    data.write_text("headline,label\nfoo,0\n", encoding="utf-8")
    result = subprocess.run([SLM, "evaluate", "--model", str(quick_model_dir), "--data", str(data)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "bad.csv:2: missing column(s) text" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("task", ["transactions", "helpdesk"])
def test_quick_classification_tasks_report_top3_and_the_baseline(quick_trainings, task):
    result, out = quick_trainings(task)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "top-3 accuracy=" in result.stdout and "baseline TF-IDF+SVM" in result.stdout
    info = read_model_info(out)
    test = info.metrics["test"]
    assert test["served"]["top3_accuracy"] >= test["served"]["accuracy"]
    assert test["baseline"]["n"] == test["served"]["n"]
    if task == "transactions":
        assert info.columns["fields"] == ["amount", "directorate"]


def test_quick_entities_model_and_its_evaluation(quick_trainings, tmp_path):
    result, out = quick_trainings("entities")
    assert result.returncode == 0, result.stderr[-3000:]
    info = read_model_info(out)
    assert info.kind == "entities" and info.labels[0] == "O"
    assert info.training["tag_scheme_in_files"] == {"FIN5.train.txt.gz": "IO", "FIN3.test.txt.gz": "IO"}
    assert info.metrics["dev"]["agreement_with_fp32"] >= info.training["args"]["int8_min_agreement"] >= 0.9
    assert info.precision.startswith("int8") and _is_int8_graph(out / "model.onnx")
    # A few lines of FIN3 in IOB2 (the model was trained on IO tags): both schemes read alike.
    data = tmp_path / "mini.conll"
    data.write_text("John\tB-PER\nSmith\tI-PER\nsigned\tO\nfor\tO\nAcme\tB-ORG\nBank\tI-ORG\n.\tO\n", encoding="utf-8")
    evaluated = subprocess.run([SLM, "evaluate", "entities", "--model", str(out), "--data", str(data), "--json",
                                "--card-dir", str(tmp_path / "card")],
                               cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads(evaluated.stdout)
    assert {"f1", "precision", "recall", "per_type"} <= set(metrics)
    assert metrics["entities"]["gold"] == 2
    assert 0 <= metrics["f1"] <= 1
    assert (tmp_path / "card" / "card.md").read_text().count("entity-level micro F1") == 1
